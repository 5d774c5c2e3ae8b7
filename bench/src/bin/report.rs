//! Markdown tables from `ordo bench --json` lines, for BENCHMARKS.md (`bench/run.sh`).
//!
//! Usage: `ordo-bench-report latency FILE.jsonl --floor LABEL` (percentiles, and each run's
//! p50 and p99 as multiples of the floor's) or `ordo-bench-report sweep FILE.jsonl` (the
//! highest rate each system held under the p99 limit).

use serde_json::Value;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let fail = |message: String| -> ! {
        eprintln!("ordo-bench-report: {message}");
        std::process::exit(2)
    };
    let (Some(kind), Some(path)) = (args.first(), args.get(1)) else {
        fail("usage: ordo-bench-report latency|sweep FILE.jsonl [--floor LABEL]".into())
    };
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| fail(format!("cannot read {path}: {e}")));
    let lines: Vec<Value> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).unwrap_or_else(|e| fail(format!("{path} line {}: {e}", i + 1))))
        .collect();
    let number = |line: &Value, field: &str| line[field].as_f64().unwrap_or(f64::NAN);
    match kind.as_str() {
        "latency" => {
            let floor_label = args.iter().position(|a| a == "--floor").and_then(|i| args.get(i + 1));
            let floor = floor_label.and_then(|label| lines.iter().find(|l| l["bench"].as_str() == Some(label)));
            println!(
                "| system | p50 µs | p90 µs | p99 µs | p99.9 µs | p99.99 µs | max µs | answered | p50 / floor | p99 / floor |"
            );
            println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
            for line in lines.iter().filter(|l| l["p50_us"].is_number()) {
                let ratio = |field: &str| {
                    floor.map_or("".to_string(), |f| format!("{:.1}×", number(line, field) / number(f, field)))
                };
                println!(
                    "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {}/{} | {} | {} |",
                    line["bench"].as_str().unwrap_or("?"),
                    number(line, "p50_us"),
                    number(line, "p90_us"),
                    number(line, "p99_us"),
                    number(line, "p999_us"),
                    number(line, "p9999_us"),
                    number(line, "max_us"),
                    line["completed"],
                    line["sent"],
                    ratio("p50_us"),
                    ratio("p99_us"),
                );
            }
        }
        "sweep" => {
            println!("| system | highest rate with p99 under the limit, commands/s | p99 there, µs | limit µs |");
            println!("| --- | --- | --- | --- |");
            for summary in lines.iter().filter(|l| l.get("max_rate").is_some()) {
                let label = summary["bench"].as_str().unwrap_or("?");
                let rate = summary["max_rate"].as_u64();
                let p99 = rate.and_then(|rate| {
                    lines.iter().find(|l| l["bench"].as_str() == Some(label) && l["rate"].as_u64() == Some(rate))
                });
                println!(
                    "| {label} | {} | {} | {:.0} |",
                    rate.map_or("none".to_string(), |r| r.to_string()),
                    p99.map_or("-".to_string(), |l| format!("{:.0}", number(l, "p99_us"))),
                    number(summary, "p99_max_us"),
                );
            }
        }
        other => fail(format!("the report is latency or sweep, not {other:?}")),
    }
}
