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
    Ok(ExitCode::SUCCESS)
}
