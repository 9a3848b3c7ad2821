//! What a command takes from the machine it runs on: a file or standard input, the signing key, the async
//! runtime. Shared by the client's commands and the order commands of `cli`.

use super::error::CliError;
use alloy::signers::local::PrivateKeySigner;
use std::io::Read;
use std::path::PathBuf;

/// The async runtime a command blocks on: the command line itself is synchronous, one command per process.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Failure(anyhow::anyhow!("cannot start the async runtime: {e}")))
}

/// Reads a file, or standard input for `-`.
pub fn read_input(path: &std::path::Path) -> Result<String, CliError> {
    let mut text = String::new();
    let res = if path.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_string(&mut text)).map(|_| ())
    };
    res.map_err(|e| CliError::Input(format!("cannot read `{}`: {e}", path.display())))?;
    Ok(text)
}

pub(crate) fn signing_key(key_file: Option<PathBuf>) -> Result<PrivateKeySigner, CliError> {
    let (text, source) = match key_file {
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| CliError::Input(format!("cannot read key file `{}`: {e}", path.display())))?;
            (text, format!("key file `{}`", path.display()))
        }
        None => match std::env::var("DRAGON_PRIVATE_KEY") {
            Ok(text) => (text, "DRAGON_PRIVATE_KEY".to_owned()),
            Err(_) => {
                return Err(CliError::Input("no signing key: set DRAGON_PRIVATE_KEY or pass --key-file PATH".into()));
            }
        },
    };
    // Never echo the key itself in an error.
    text.trim()
        .parse::<PrivateKeySigner>()
        .map_err(|_| CliError::Input(format!("{source} does not hold a valid secp256k1 private key (32 bytes as hex)")))
}
