//! `cargo xtask setup`: provisions everything a run needs and prints what it found.

use std::process::ExitCode;

use anyhow::Result;
use bench_tests::harness::Harness;
use bench_tests::provision::brokers::Driver;

/// The packages worth a line; every version is in each result's `environment.versions`.
const SHOWN_PACKAGES: [&str; 8] = [
    "asynctasq",
    "celery",
    "kombu",
    "redis",
    "asyncpg",
    "aio-pika",
    "boto3",
    "moto",
];

pub fn run() -> Result<ExitCode> {
    let harness = Harness::provision(&mut |line| eprintln!("  {line}"))?;
    let py = &harness.python;
    println!("python      {} ({})", py.version, py.source);
    println!("interpreter {}", py.interpreter.display());
    println!(
        "venv        {} ({} packages)",
        py.venv.display(),
        py.packages.len()
    );
    for name in SHOWN_PACKAGES {
        if let Some(version) = py.packages.get(name) {
            println!("  {name:<10} {version}");
        }
    }
    let mut all_found = true;
    for driver in Driver::ALL {
        match harness.broker(driver) {
            Ok(broker) => {
                let info = broker.info();
                println!(
                    "{:<11} {} {} ({})",
                    driver.name(),
                    info.url,
                    info.server_version,
                    info.source
                );
            }
            Err(e) => {
                all_found = false;
                println!("{:<11} unavailable: {e:#}", driver.name());
            }
        }
    }
    let env = &harness.environment;
    println!(
        "host        {} cpus, {} GB, {}",
        env.cpus, env.memory_gb, env.os
    );
    let cost = bench_tests::measure::recorder_cost::measure(&harness, 5000, 5)?;
    println!(
        "recorder    {:.1} us per task wall, {:.1} us CPU (median of {} batches; a Redis INCR here: {:.1} us)",
        cost.median_record_us(),
        cost.median_record_cpu_us(),
        cost.record_us.len(),
        cost.median_redis_incr_us()
    );
    Ok(if all_found {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
