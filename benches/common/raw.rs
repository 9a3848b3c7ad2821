//! A lean HTTP/1.1 client for load generation: one keep-alive connection, one request at a time, no pipelining.
//! It parses only what `dragon serve` answers (a status line, headers, a body by Content-Length or chunks), so
//! that on a 2-core machine the load generator takes as little as possible of the CPU the server is measured on
//! (reqwest spends several times more per request).

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

pub struct Conn {
    io: BufReader<TcpStream>,
    host: String,
    line: String,
}

impl Conn {
    pub async fn open(addr: &str) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn { io: BufReader::with_capacity(64 << 10, stream), host: addr.to_owned(), line: String::new() })
    }

    /// Sends one request and reads its whole answer: (status, body).
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<(u16, Vec<u8>)> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nhost: {}\r\n", self.host);
        for (k, v) in headers {
            head.push_str(k);
            head.push_str(": ");
            head.push_str(v);
            head.push_str("\r\n");
        }
        if !body.is_empty() || method == "POST" {
            head.push_str(&format!("content-length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let s = self.io.get_mut();
        if body.is_empty() {
            s.write_all(head.as_bytes()).await?;
        } else {
            let mut out = Vec::with_capacity(head.len() + body.len());
            out.extend_from_slice(head.as_bytes());
            out.extend_from_slice(body);
            s.write_all(&out).await?;
        }
        self.read_answer().await
    }

    async fn read_line(&mut self) -> std::io::Result<&str> {
        self.line.clear();
        if self.io.read_line(&mut self.line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(self.line.trim_end())
    }

    async fn read_answer(&mut self) -> std::io::Result<(u16, Vec<u8>)> {
        let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
        let status =
            self.read_line().await?.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| bad("status"))?;
        let (mut length, mut chunked) = (None, false);
        loop {
            let line = self.read_line().await?;
            if line.is_empty() {
                break;
            }
            let (k, v) = line.split_once(':').ok_or_else(|| bad("header"))?;
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse::<usize>().ok();
            } else if k.eq_ignore_ascii_case("transfer-encoding") && v.to_ascii_lowercase().contains("chunked") {
                chunked = true;
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                let size = usize::from_str_radix(self.read_line().await?.split(';').next().unwrap_or(""), 16)
                    .map_err(|_| bad("chunk size"))?;
                if size == 0 {
                    self.read_line().await?;
                    break;
                }
                let at = body.len();
                body.resize(at + size, 0);
                self.io.read_exact(&mut body[at..]).await?;
                self.read_line().await?;
            }
        } else if let Some(n) = length {
            body.resize(n, 0);
            self.io.read_exact(&mut body).await?;
        }
        Ok((status, body))
    }
}

/// Every process: (pid, parent pid, CPU seconds used so far, user + system), from /proc.
fn processes() -> Vec<(u32, u32, f64)> {
    let ticks = 100.0; // USER_HZ on Linux
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return out };
    for e in dir.flatten() {
        let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(text) = std::fs::read_to_string(format!("/proc/{p}/stat")) else { continue };
        // Fields after the command name (which is in parentheses and may hold spaces).
        let Some(rest) = text.rsplit_once(')').map(|r| r.1) else { continue };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let field = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        out.push((p, field(1) as u32, (field(11) + field(12)) / ticks));
    }
    out
}

/// `pid` and every process descending from it.
pub fn tree(pid: u32) -> Vec<u32> {
    let all = processes();
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let parent = out[i];
        out.extend(all.iter().filter(|(p, pp, _)| *pp == parent && *p != parent).map(|(p, _, _)| *p));
        i += 1;
    }
    out
}

/// CPU seconds (user + system) used so far by `pid` and every process descending from it.
pub fn tree_cpu(pid: u32) -> f64 {
    let members = tree(pid);
    processes().iter().filter(|(p, _, _)| members.contains(p)).map(|(_, _, cpu)| cpu).sum()
}

/// CPU seconds (user + system) used so far by `pid` alone (all its threads, none of its children).
pub fn own_cpu(pid: u32) -> f64 {
    processes().iter().find(|(p, _, _)| *p == pid).map_or(0.0, |(_, _, cpu)| *cpu)
}
