//! `azure-faithful`: the proxy as a process, for JUnit tests, the demo and the benchmarks.
//!
//! Prints one JSON line with its ports, then serves until stdin reaches EOF (so it never
//! outlives the JVM that started it) or it is killed. Faults are commanded over HTTP on the
//! control port: `POST /` with one JSON command, see `azure_faithful::Command`.

use std::io::Read;
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;

use azure_faithful::{Profile, Proxy, ProxyConfig};

const USAGE: &str = "usage: azure-faithful --blob-upstream HOST:PORT --table-upstream HOST:PORT \
                     [--clients N] [--seed S] [--profile exact|realistic]";

fn addr(s: &str) -> Result<SocketAddr, String> {
    s.to_socket_addrs()
        .map_err(|e| format!("{s}: {e}"))?
        .next()
        .ok_or_else(|| format!("{s}: no address"))
}

fn parse(args: &[String]) -> Result<ProxyConfig, String> {
    let mut blob = None;
    let mut table = None;
    let mut clients = 1usize;
    let mut seed = 0u64;
    let mut profile = Profile::Exact;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--blob-upstream" => blob = Some(addr(value()?)?),
            "--table-upstream" => table = Some(addr(value()?)?),
            "--clients" => clients = value()?.parse().map_err(|e| format!("--clients: {e}"))?,
            "--seed" => seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--profile" => profile = value()?.parse().map_err(|e| format!("{e}"))?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(ProxyConfig {
        blob_upstream: blob.ok_or("--blob-upstream is required")?,
        table_upstream: table.ok_or("--table-upstream is required")?,
        clients,
        seed,
        profile,
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = match parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("azure-faithful: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let proxy = match Proxy::start(config) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("azure-faithful: {e}");
            return ExitCode::FAILURE;
        }
    };
    let ready = serde_json::json!({
        "clients": proxy.endpoints(),
        "control": proxy.control_port(),
    });
    println!("{ready}");
    // Serve until whoever started us closes our stdin (or dies, which closes it too).
    let mut sink = [0u8; 256];
    let mut stdin = std::io::stdin();
    while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
    drop(proxy);
    ExitCode::SUCCESS
}
