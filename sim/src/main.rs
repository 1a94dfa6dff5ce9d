//! `samza-azure-sim`: runs the deterministic simulator.
//!
//! - `run --seed S [--bug no-if-match|ignore-fence|ack-before-stop|unfenced-checkpoints] [--trace]`: one seed's run, its verdict and
//!   (with `--trace`) its events;
//! - `seeds --from A --to B [--budget-secs T]`: a range of seeds (or as many as fit in T
//!   seconds of real time), reporting each failure with the command that replays it.

use std::time::Instant;

use samza_azure_sim::cases::{case, replay_command};
use samza_azure_sim::net::Bug;
use samza_azure_sim::world::run;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn number(args: &[String], name: &str, default: u64) -> u64 {
    match arg(args, name) {
        Some(v) => v.parse().unwrap_or_else(|_| {
            eprintln!("{name} takes a whole number, found '{v}'");
            std::process::exit(2)
        }),
        None => default,
    }
}

/// Virtual time since the run started, for log lines.
struct VirtualTime;

impl tracing_subscriber::fmt::time::FormatTime for VirtualTime {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        let now = tokio::time::Instant::now();
        let start = samza_azure_sim::world::run_start().unwrap_or(now);
        write!(w, "{:>10.3}", (now - start).as_secs_f64())
    }
}

/// `--bug B`: a known bug reintroduced, to show that the checker catches it.
fn bug(args: &[String]) -> Option<Bug> {
    let name = arg(args, "--bug")?;
    Bug::named(&name).or_else(|| {
        let names: Vec<&str> = Bug::ALL.iter().map(|b| b.name()).collect();
        eprintln!("--bug takes one of {}, found '{name}'", names.join(", "));
        std::process::exit(2)
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(filter) = std::env::var_os("SIM_LOG") {
        // The engine's own log, stamped with virtual time: SIM_LOG=info (or debug).
        let level = filter
            .to_string_lossy()
            .parse()
            .unwrap_or(tracing::Level::INFO);
        tracing_subscriber::fmt()
            .with_max_level(level)
            .with_timer(VirtualTime)
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .init();
    }
    match args.first().map(String::as_str) {
        Some("run") => {
            let mut cfg = case(number(&args, "--seed", 0));
            cfg.bug = bug(&args);
            println!(
                "seed {}: {} processors, {} tasks, {} faults",
                cfg.seed,
                cfg.processors,
                cfg.tasks,
                cfg.schedule.len()
            );
            let out = run(cfg);
            if args.iter().any(|a| a == "--trace") {
                for line in &out.trace {
                    println!("{line}");
                }
            }
            println!(
                "{}: {} s simulated, {} requests, {} publishes, settled after {:?}, digest {:016x}",
                if out.ok() { "PASS" } else { "FAIL" },
                out.simulated.as_secs(),
                out.requests,
                out.publishes,
                out.settled_after,
                out.digest()
            );
            for v in &out.violations {
                println!("  {v}");
            }
            std::process::exit(if out.ok() { 0 } else { 1 });
        }
        Some("shrink") => {
            let cfg = case(number(&args, "--seed", 0));
            if run(cfg.clone()).ok() {
                println!("seed {} passes: nothing to shrink", cfg.seed);
                return;
            }
            let small = samza_azure_sim::cases::shrink(&cfg);
            println!(
                "seed {}: {} processors, {} tasks; fails with {} of its {} faults:",
                cfg.seed,
                cfg.processors,
                cfg.tasks,
                small.schedule.len(),
                cfg.schedule.len()
            );
            for step in &small.schedule {
                println!("  at {:>8.3} s: {}", step.at.as_secs_f64(), step.fault);
            }
            for v in run(small).violations {
                println!("  {v}");
            }
        }
        Some("scale") => {
            let n = number(&args, "--processors", 10) as usize;
            let tasks = number(&args, "--tasks", 10 * n as u64) as u32;
            let started = Instant::now();
            let r = samza_azure_sim::world::scale(n, tasks, number(&args, "--seed", 1));
            let s = |d: Option<std::time::Duration>| {
                d.map_or("not within 120 s".to_owned(), |d| {
                    format!("{:.1} s", d.as_secs_f64())
                })
            };
            println!(
                "N = {}, {} tasks ({:.0} s of real time)",
                r.processors,
                r.tasks,
                started.elapsed().as_secs_f64()
            );
            println!("  cold start        {}", s(r.cold_start));
            println!("  follower kill -9  {}", s(r.follower_crash));
            println!("  leader kill -9    {}", s(r.leader_crash));
            println!("  graceful leave    {}", s(r.graceful_leave));
            println!("  peak per second, steady / during rebalances:");
            for (what, (steady, busy)) in [
                ("table partition entities", r.partition_entities),
                ("table partition requests", r.partition_requests),
                ("blob requests", r.blob_requests),
                ("account requests", r.account_requests),
            ] {
                println!("    {what:<24} {steady} / {busy}");
            }
            println!("  leases broken     {}", r.lease_breaks);
            if args.iter().any(|a| a == "--breakdown") {
                for (what, when, peak) in &r.breakdown {
                    let kinds: Vec<String> =
                        peak.kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
                    println!(
                        "  {what} peak, {when}: {} at {} s: {}",
                        peak.resource,
                        peak.second,
                        kinds.join(", ")
                    );
                }
            }
            for v in &r.violations {
                println!("  VIOLATION {v}");
            }
        }
        Some("seeds") => {
            let from = number(&args, "--from", 0);
            let to = number(&args, "--to", from + 1000);
            let budget = arg(&args, "--budget-secs").map(|_| number(&args, "--budget-secs", 0));
            let started = Instant::now();
            let (mut passed, mut failed) = (0u64, 0u64);
            for seed in from..to {
                if budget.is_some_and(|b| started.elapsed().as_secs() >= b) {
                    break;
                }
                let mut cfg = case(seed);
                cfg.bug = bug(&args);
                let command = replay_command(&cfg);
                let out = run(cfg);
                if out.ok() {
                    passed += 1;
                } else {
                    failed += 1;
                    let more = out.violations.len().saturating_sub(3);
                    let first: Vec<&str> =
                        out.violations.iter().take(3).map(String::as_str).collect();
                    let more = if more > 0 {
                        format!(" (and {more} more)")
                    } else {
                        String::new()
                    };
                    println!("seed {seed} FAILED: {}{more}", first.join("; "));
                    println!("  replay: {command}");
                }
            }
            println!(
                "{passed} seeds passed, {failed} failed, in {:.1} s",
                started.elapsed().as_secs_f64()
            );
            std::process::exit(i32::from(failed > 0));
        }
        _ => {
            eprintln!("usage: samza-azure-sim run --seed S [--bug B] [--trace] | seeds --from A --to B [--budget-secs T]");
            std::process::exit(2);
        }
    }
}
