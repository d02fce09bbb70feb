//! `cargo xtask setup`: provisions everything a run needs and prints what it found.

use std::process::ExitCode;

use anyhow::Result;
use bench_tests::harness::Harness;

pub fn run() -> Result<ExitCode> {
    let harness = Harness::provision(&mut |line| eprintln!("  {line}"))?;
    let py = &harness.python;
    println!("python      {} ({})", py.version, py.source);
    println!("interpreter {}", py.interpreter.display());
    println!("venv        {}", py.venv.display());
    for (name, version) in &py.packages {
        println!("  {name:<12} {version}");
    }
    let redis = &harness.redis.info;
    println!(
        "redis       {} {} ({})",
        redis.url, redis.server_version, redis.source
    );
    println!(
        "host        {} cpus, {} GB, {}",
        harness.environment.cpus, harness.environment.memory_gb, harness.environment.os
    );
    let cost = bench_tests::recorder_cost::measure(&harness, 5000, 5)?;
    println!(
        "recorder    {:.1} us per task (median of {} batches; a Redis INCR here: {:.1} us)",
        cost.median_record_us(),
        cost.record_us.len(),
        cost.median_redis_incr_us()
    );
    Ok(ExitCode::SUCCESS)
}
