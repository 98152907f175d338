//! Load generator for `scripts/bench-ingest`: posts signed deliveries with unique ids at a fixed
//! concurrency and prints throughput and latency percentiles as one JSON line.
//!
//! `ingest_load --url URL --secret S --payload FILE --count N --concurrency C [--event E]`

use std::time::{Duration, Instant};

use api::signature::sign;
use clap::Parser;
use futures::StreamExt;

#[derive(Parser)]
struct Args {
    #[arg(long)]
    url: String,
    #[arg(long)]
    secret: String,
    #[arg(long)]
    payload: std::path::PathBuf,
    #[arg(long, default_value_t = 20_000)]
    count: usize,
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    #[arg(long, default_value = "pull_request")]
    event: String,
    /// Requests sent first and not measured.
    #[arg(long, default_value_t = 500)]
    warmup: usize,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

#[allow(clippy::print_stdout)] // the result line is this tool's output
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let body = bytes::Bytes::from(std::fs::read(&args.payload)?);
    let signature = sign(&args.secret, &body);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let run = uuid::Uuid::new_v4().simple().to_string();

    let post = |i: usize| {
        let client = client.clone();
        let body = body.clone();
        let signature = signature.clone();
        let url = args.url.clone();
        let event = args.event.clone();
        let id = format!("bench-{run}-{i}");
        async move {
            let started = Instant::now();
            let response = client
                .post(url)
                .header("content-type", "application/json")
                .header("x-github-event", event)
                .header("x-github-delivery", id)
                .header("x-hub-signature-256", signature)
                .body(body)
                .send()
                .await;
            let ok = matches!(&response, Ok(r) if r.status() == 202);
            (started.elapsed(), ok)
        }
    };

    let warm: Vec<_> = futures::stream::iter(0..args.warmup)
        .map(post)
        .buffer_unordered(args.concurrency)
        .collect()
        .await;
    anyhow::ensure!(warm.iter().all(|(_, ok)| *ok), "warm-up requests failed");

    let started = Instant::now();
    let results: Vec<(Duration, bool)> =
        futures::stream::iter(args.warmup..args.warmup + args.count)
            .map(post)
            .buffer_unordered(args.concurrency)
            .collect()
            .await;
    let elapsed = started.elapsed();
    let failed = results.iter().filter(|(_, ok)| !ok).count();
    let mut latencies: Vec<Duration> = results.into_iter().map(|(d, _)| d).collect();
    latencies.sort();
    println!(
        "{}",
        serde_json::json!({
            "count": args.count,
            "failed": failed,
            "concurrency": args.concurrency,
            "seconds": elapsed.as_secs_f64(),
            "per_second": args.count as f64 / elapsed.as_secs_f64(),
            "p50_ms": percentile(&latencies, 0.50),
            "p95_ms": percentile(&latencies, 0.95),
            "p99_ms": percentile(&latencies, 0.99),
        })
    );
    Ok(())
}
