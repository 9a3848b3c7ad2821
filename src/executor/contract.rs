//! iExec's contract with an app, as both executors give it: the arguments of the request's params, split as
//! iExec splits them, and the `IEXEC_*` environment.

use super::error::ExecError;
use super::spec::TaskSpec;
use alloy::primitives::Address;

/// The command-line string of a request's params, as iExec reads it: the `iexec_args` field when the params are
/// a JSON object, else the whole params string.
pub fn args_from_params(params: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(params) {
        Ok(serde_json::Value::Object(map)) => {
            map.get("iexec_args").and_then(|a| a.as_str()).unwrap_or_default().to_owned()
        }
        _ => params.to_owned(),
    }
}

/// Splits a command-line string as iExec's worker does (Maven's `CommandLineUtils.translateCommandline`):
/// tokens separated by spaces (only spaces), single or double quotes group (and may join, `a"b c"` is `ab c`),
/// no escapes, an empty quoted string is an empty argument; unbalanced quotes are an error.
pub fn split_args(line: &str) -> Result<Vec<String>, ExecError> {
    let mut args = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut quoted = false;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                quoted = true;
            }
            (None, ' ') => {
                if quoted || !cur.is_empty() {
                    args.push(std::mem::take(&mut cur));
                    quoted = false;
                }
            }
            (None, c) => cur.push(c),
        }
    }
    if quote.is_some() {
        return Err(ExecError::BadInput(format!("unbalanced quotes in arguments {line:?}")));
    }
    if quoted || !cur.is_empty() {
        args.push(cur);
    }
    Ok(args)
}

/// The `IEXEC_*` environment of a task, with `in_dir` and `out_dir` as the app sees them (host paths for
/// `process`, `/iexec_in` and `/iexec_out` in a container). The names are those of iExec's worker, including
/// the older `IEXEC_NB_INPUT_FILES` which some apps still read.
pub fn iexec_env(task: &TaskSpec, in_dir: &str, out_dir: &str) -> Vec<(String, String)> {
    let mut env = vec![
        ("IEXEC_TASK_ID".to_owned(), task.task_id.to_string()),
        ("IEXEC_DEAL_ID".to_owned(), task.deal_id.to_string()),
        ("IEXEC_TASK_INDEX".to_owned(), task.task_index.to_string()),
        ("IEXEC_IN".to_owned(), in_dir.to_owned()),
        ("IEXEC_OUT".to_owned(), out_dir.to_owned()),
        ("IEXEC_BOT_SIZE".to_owned(), task.bot_size.to_string()),
        ("IEXEC_BOT_FIRST_INDEX".to_owned(), task.bot_first.to_string()),
        ("IEXEC_BOT_TASK_INDEX".to_owned(), task.task_index.to_string()),
        ("IEXEC_INPUT_FILES_FOLDER".to_owned(), in_dir.to_owned()),
        ("IEXEC_INPUT_FILES_NUMBER".to_owned(), task.input_files.len().to_string()),
        ("IEXEC_NB_INPUT_FILES".to_owned(), task.input_files.len().to_string()),
    ];
    for (i, f) in task.input_files.iter().enumerate() {
        env.push((format!("IEXEC_INPUT_FILE_NAME_{}", i + 1), f.name.clone()));
    }
    match &task.dataset {
        Some(d) => {
            env.push(("IEXEC_DATASET_ADDRESS".to_owned(), d.address.to_string()));
            env.push(("IEXEC_DATASET_FILENAME".to_owned(), d.name.clone()));
        }
        // iExec documents the zero address when there is no dataset, and no file name.
        None => env.push(("IEXEC_DATASET_ADDRESS".to_owned(), Address::ZERO.to_string())),
    }
    env
}

/// The task's extra environment without the names the executor sets itself.
pub(super) fn extra_env(task: &TaskSpec) -> impl Iterator<Item = &(String, String)> {
    task.env.iter().filter(|(k, _)| !k.starts_with("IEXEC_"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_iexec() {
        let s = |l: &str| split_args(l).expect("balanced");
        assert_eq!(
            s("1st_param 2nd_param '3rd param' \"4th param\""),
            ["1st_param", "2nd_param", "3rd param", "4th param"]
        );
        assert_eq!(s("  a   b "), ["a", "b"]);
        assert_eq!(s("a\"b c\"d"), ["ab cd"]);
        assert_eq!(s("'' x"), ["", "x"]);
        assert_eq!(s("\"it's\" 'say \"hi\"'"), ["it's", "say \"hi\""]);
        assert_eq!(s("a\tb"), ["a\tb"]);
        assert!(s("").is_empty());
        assert!(split_args("'open").is_err());
    }

    #[test]
    fn args_come_from_iexec_args_or_the_whole_params() {
        assert_eq!(args_from_params(r#"{"iexec_args":"x y","iexec_input_files":[]}"#), "x y");
        assert_eq!(args_from_params(r#"{"iexec_input_files":[]}"#), "");
        assert_eq!(args_from_params("plain words"), "plain words");
        assert_eq!(args_from_params(""), "");
    }
}
