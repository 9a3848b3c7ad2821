//! The input rules, against local files and loopback HTTP servers.

use super::*;
use alloy::primitives::{Address, B256};
use alloy::transports::http::reqwest::Url;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

fn sha(b: &[u8]) -> B256 {
    B256::from_slice(&Sha256::digest(b))
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dragon-inputs-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("dir");
    d
}

/// An HTTP server on loopback answering every request with `head` + `body`, counting requests; returns its
/// `host:port`.
fn serve_raw(head: String, body: Vec<u8>) -> (String, Arc<AtomicUsize>) {
    serve_with(move |_| (head.clone(), body.clone()))
}

/// The same, the answer made from the server's own `host:port`.
fn serve_with(answer: impl Fn(&str) -> (String, Vec<u8>) + Send + 'static) -> (String, Arc<AtomicUsize>) {
    use std::io::Read;
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    let (head, body) = answer(&addr.to_string());
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            h.fetch_add(1, Ordering::SeqCst);
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&body);
        }
    });
    (addr.to_string(), hits)
}

fn serve(body: &'static [u8]) -> (String, Arc<AtomicUsize>) {
    let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len());
    serve_raw(head, body.to_vec())
}

fn redirect_to(location: &str) -> (String, Arc<AtomicUsize>) {
    let head = format!("HTTP/1.1 302 Found\r\nlocation: {location}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    serve_raw(head, Vec::new())
}

fn policy(allow: &[&str]) -> InputPolicy {
    InputPolicy { allow_hosts: allow.iter().map(|a| a.parse().expect("host:port")).collect(), ..InputPolicy::default() }
}

fn ds(multiaddr: &str, checksum: B256) -> DatasetRef {
    DatasetRef { address: Address::repeat_byte(7), multiaddr: multiaddr.to_owned(), checksum }
}

#[tokio::test]
async fn a_local_dataset_is_read_only_inside_the_root_checked_and_cached_by_checksum() {
    let d = dir("dataset");
    let root = d.join("root");
    std::fs::create_dir_all(&root).expect("mkdir");
    let src = root.join("src.bin");
    std::fs::write(&src, b"secret data").expect("write");
    let inputs =
        Inputs::new(d.join("cache"), InputPolicy { dataset_root: Some(root.clone()), ..InputPolicy::default() })
            .expect("inputs");
    let r = ds(src.to_str().expect("utf-8"), sha(b"secret data"));
    let (f, _) = inputs.for_task(B256::ZERO, Some(&r), &[]).await.expect("fetched");
    let f = f.expect("dataset");
    assert_eq!(std::fs::read(&f.path).expect("read"), b"secret data");
    assert_eq!(f.name, format!("{:#x}", r.address));
    // Cached: the source may go away.
    std::fs::remove_file(&src).expect("rm");
    let (again, _) = inputs.for_task(B256::ZERO, Some(&r), &[]).await.expect("cached");
    assert_eq!(again.expect("dataset").path, f.path);
    // The cache is the worker's alone.
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(d.join("cache")).expect("cache").permissions().mode() & 0o777, 0o700);
}

#[tokio::test]
async fn local_datasets_outside_the_root_or_without_a_root_are_refused_and_say_nothing_of_the_file() {
    let d = dir("outside");
    let root = d.join("root");
    std::fs::create_dir_all(&root).expect("mkdir");
    let secret = d.join("secret.txt");
    std::fs::write(&secret, b"not for apps").expect("write");
    std::os::unix::fs::symlink(&secret, root.join("link.txt")).expect("symlink");
    let with_root =
        Inputs::new(d.join("cache"), InputPolicy { dataset_root: Some(root.clone()), ..InputPolicy::default() })
            .expect("inputs");
    let without = Inputs::new(d.join("cache2"), InputPolicy::default()).expect("inputs");
    let cases = [
        (&with_root, secret.display().to_string(), "outside"),
        (&with_root, format!("file://{}", secret.display()), "outside"),
        (&with_root, format!("{}/../secret.txt", root.display()), "outside"),
        (&with_root, root.join("link.txt").display().to_string(), "outside"),
        (&with_root, "/proc/self/environ".to_owned(), "outside"),
        (&with_root, "/no/such/file".to_owned(), "outside"),
        (&with_root, root.join("absent").display().to_string(), "no readable file"),
        (&without, secret.display().to_string(), "no dataset root"),
        (&without, "file:///proc/self/environ".to_owned(), "no dataset root"),
        (&with_root, "relative/path".to_owned(), "absolute path"),
        (&with_root, "/ipfs/QmSomething".to_owned(), "IPFS"),
        (&with_root, "ftp://example.com/x".to_owned(), "not an http(s) URL"),
    ];
    for (inputs, url, says) in cases {
        let err = inputs.for_task(B256::ZERO, Some(&ds(&url, sha(b"x"))), &[]).await.expect_err(&url);
        assert!(matches!(err, InputError::Refused { .. }), "{url}: {err:?}");
        assert!(err.to_string().contains(says), "{url}: {err}");
    }
    // A file in the root whose bytes do not match: the error gives the expected checksum, never the file's.
    std::fs::write(root.join("tampered"), b"tampered").expect("write");
    let r = ds(root.join("tampered").to_str().expect("utf-8"), sha(b"original"));
    let err = with_root.for_task(B256::ZERO, Some(&r), &[]).await.expect_err("mismatch");
    assert!(matches!(err, InputError::Checksum { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("does not match") && text.contains(&format!("{:x}", sha(b"original"))), "{text}");
    assert!(!text.contains(&format!("{:x}", sha(b"tampered"))), "the actual digest is not published: {text}");
    let cached: Vec<_> = std::fs::read_dir(d.join("cache/datasets")).expect("dir").collect();
    assert!(cached.is_empty(), "nothing cached, not even a temporary file: {cached:?}");
}

#[tokio::test]
async fn input_files_come_over_http_once_per_deal_and_are_bounded() {
    let (host, hits) = serve(b"a,b\n1,2\n");
    let url = format!("http://{host}/data/file.csv?x=1");
    let d = dir("http");
    let inputs = Inputs::new(d.join("cache"), policy(&[&host])).expect("inputs");
    let deal = B256::repeat_byte(1);
    let (_, files) = inputs.for_task(deal, None, std::slice::from_ref(&url)).await.expect("fetched");
    assert_eq!(files[0].name, "file.csv");
    assert_eq!(std::fs::read(&files[0].path).expect("read"), b"a,b\n1,2\n");
    inputs.for_task(deal, None, std::slice::from_ref(&url)).await.expect("cached");
    assert_eq!(hits.load(Ordering::SeqCst), 1, "one fetch per deal");
    inputs.forget_deal(deal);
    inputs.for_task(deal, None, std::slice::from_ref(&url)).await.expect("fetched again");
    assert_eq!(hits.load(Ordering::SeqCst), 2);

    // Per file: refused from the declared length, before the body.
    let small = Inputs::new(d.join("small"), InputPolicy { max_file_bytes: 4, ..policy(&[&host]) }).expect("inputs");
    let err = small.for_task(B256::ZERO, None, std::slice::from_ref(&url)).await.expect_err("too large");
    assert!(err.to_string().contains("limit of 4 bytes per file"), "{err}");
    // Per task: two files of 8 bytes over a budget of 12.
    let two = [url.clone(), format!("http://{host}/other.csv")];
    let budget = Inputs::new(d.join("budget"), InputPolicy { max_task_bytes: 12, ..policy(&[&host]) }).expect("inputs");
    let err = budget.for_task(B256::ZERO, None, &two).await.expect_err("over the task's budget");
    assert!(matches!(err, InputError::TaskTooLarge { max: 12 }), "{err:?}");
    // Count: refused before any fetch.
    let before = hits.load(Ordering::SeqCst);
    let few = Inputs::new(d.join("few"), InputPolicy { max_files: 1, ..policy(&[&host]) }).expect("inputs");
    let err = few.for_task(B256::repeat_byte(9), None, &two).await.expect_err("too many");
    assert!(matches!(err, InputError::TooManyFiles { count: 2, max: 1 }), "{err:?}");
    assert_eq!(hits.load(Ordering::SeqCst), before, "nothing fetched");
}

#[tokio::test]
async fn a_body_without_length_is_cut_at_the_limit_and_a_slow_one_at_the_fetch_timeout() {
    // No content-length: the bound applies while reading.
    let (host, _) = serve_raw("HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n".into(), vec![b'x'; 100_000]);
    let d = dir("stream");
    let inputs =
        Inputs::new(d.join("cache"), InputPolicy { max_file_bytes: 1000, ..policy(&[&host]) }).expect("inputs");
    let err = inputs.for_task(B256::ZERO, None, &[format!("http://{host}/big")]).await.expect_err("too large");
    assert!(err.to_string().contains("limit of 1000 bytes per file"), "{err}");
    // A server that never answers: the fetch gives up at its limit, the task at its own.
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent = l.local_addr().expect("addr").to_string();
    let slow =
        Inputs::new(d.join("slow"), InputPolicy { fetch_timeout: Duration::from_millis(300), ..policy(&[&silent]) })
            .expect("inputs");
    let err = slow.for_task(B256::ZERO, None, &[format!("http://{silent}/x")]).await.expect_err("timeout");
    assert!(err.to_string().contains("per fetch"), "{err}");
    let task =
        Inputs::new(d.join("task"), InputPolicy { task_timeout: Duration::from_millis(300), ..policy(&[&silent]) })
            .expect("inputs");
    let err = task.for_task(B256::ZERO, None, &[format!("http://{silent}/x")]).await.expect_err("timeout");
    assert!(matches!(err, InputError::TaskTimeout(_)), "{err:?}");
    drop(l);
}

#[tokio::test]
async fn local_paths_and_non_public_addresses_are_refused_without_a_connection() {
    let (host, hits) = serve(b"inside");
    let port = host.rsplit_once(':').expect("port").1;
    let inputs = Inputs::new(dir("refused").join("cache"), InputPolicy::default()).expect("inputs");
    for (url, says) in [
        ("/proc/self/environ".to_owned(), "only http(s)"),
        ("file:///proc/self/environ".to_owned(), "only http(s)"),
        ("relative/x.txt".to_owned(), "only http(s)"),
        ("ftp://example.com/x.txt".to_owned(), "only http(s)"),
        (format!("http://{host}/x.txt"), "not a public address"),
        (format!("http://localhost:{port}/x.txt"), "localhost does not resolve to public addresses"),
        (format!("http://[::ffff:127.0.0.1]:{port}/x.txt"), "not a public address"),
        (format!("http://2130706433:{port}/x.txt"), "127.0.0.1 is not a public address"),
        (format!("http://0x7f.1:{port}/x.txt"), "127.0.0.1 is not a public address"),
        ("http://169.254.169.254/latest/meta-data/x".to_owned(), "not a public address"),
        ("http://10.0.0.1/x".to_owned(), "not a public address"),
        ("http://[fd00::1]/x".to_owned(), "not a public address"),
        ("http://0.0.0.0/x".to_owned(), "not a public address"),
    ] {
        let err = inputs.for_task(B256::ZERO, None, std::slice::from_ref(&url)).await.expect_err(&url);
        assert!(matches!(err, InputError::Refused { .. }), "{url}: {err:?}");
        assert!(err.to_string().contains(says), "{url}: {err}");
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the loopback server was never reached");
}

#[tokio::test]
async fn redirects_are_checked_at_every_hop_even_from_a_trusted_host() {
    let (inner, inner_hits) = serve(b"the pool's API");
    let (trusted, trusted_hits) = redirect_to(&format!("http://{inner}/status"));
    let d = dir("redirect");
    let inputs = Inputs::new(d.join("cache"), policy(&[&trusted])).expect("inputs");
    let err = inputs.for_task(B256::ZERO, None, &[format!("http://{trusted}/x.txt")]).await.expect_err("refused");
    assert!(matches!(err, InputError::Refused { .. }), "{err:?}");
    assert!(err.to_string().contains("redirected to") && err.to_string().contains("not a public"), "{err}");
    assert_eq!((trusted_hits.load(Ordering::SeqCst), inner_hits.load(Ordering::SeqCst)), (1, 0));
    // To another trusted host, it is followed; to a file:// URL, never.
    let both = Inputs::new(d.join("both"), policy(&[&trusted, &inner])).expect("inputs");
    let (_, files) = both.for_task(B256::ZERO, None, &[format!("http://{trusted}/x.txt")]).await.expect("ok");
    assert_eq!(std::fs::read(&files[0].path).expect("read"), b"the pool's API");
    let (to_file, _) = redirect_to("file:///proc/self/environ");
    let inputs = Inputs::new(d.join("file"), policy(&[&to_file])).expect("inputs");
    let err = inputs.for_task(B256::ZERO, None, &[format!("http://{to_file}/x.txt")]).await.expect_err("file");
    assert!(err.to_string().contains("only http(s)"), "{err}");
    // A loop (a server redirecting to itself): bounded.
    let (looping, hits) = serve_with(|me| {
        let head = format!("HTTP/1.1 302 Found\r\nlocation: http://{me}/again\r\ncontent-length: 0\r\n\r\n");
        (head, Vec::new())
    });
    let inputs = Inputs::new(d.join("loop"), policy(&[&looping])).expect("inputs");
    let err = inputs.for_task(B256::ZERO, None, &[format!("http://{looping}/x.txt")]).await.expect_err("loop");
    assert!(err.to_string().contains("more than 5 redirects"), "{err}");
    assert_eq!(hits.load(Ordering::SeqCst), MAX_REDIRECTS + 1);
}

#[test]
fn allowed_hosts_parse_and_match_as_urls_write_them() {
    let a: AllowedHost = "Data.Example:8080".parse().expect("name");
    assert_eq!(a.to_string(), "data.example:8080");
    let v6: AllowedHost = "[::1]:80".parse().expect("v6");
    assert_eq!(v6.to_string(), "[::1]:80");
    for bad in ["data.example", "::1:80", "host:port", "user@host:80", ":80", "host:70000"] {
        assert!(bad.parse::<AllowedHost>().is_err(), "{bad}");
    }
    let p = policy(&["data.example:8080", "[::1]:80", "10.0.0.5:80"]);
    let url = |u: &str| Url::parse(u).expect("url");
    assert!(p.trusts(&url("http://DATA.example:8080/x")));
    assert!(!p.trusts(&url("http://data.example/x")));
    assert!(p.trusts(&url("http://[::1]/x")));
    assert!(p.trusts(&url("http://10.0.0.5/x")));
    assert!(!p.trusts(&url("https://10.0.0.5/x")), "https is port 443");
}

#[test]
fn names_and_urls_of_params() {
    assert_eq!(input_name("https://h/a/b.txt?q#f").as_deref(), Some("b.txt"));
    assert_eq!(input_name("https://h/dir/"), None);
    assert_eq!(input_urls(r#"{"iexec_input_files":["http://a/x","http://b/y"]}"#), ["http://a/x", "http://b/y"]);
    assert!(input_urls("plain args").is_empty());
}
