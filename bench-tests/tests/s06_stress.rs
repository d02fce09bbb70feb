//! Scenario 6 (stress) at ci size: one worker pool per system through the whole ramp of
//! offered rates, queue depth read over the ramp and its drain, each step judged by the
//! saturation rule.

mod common;

use bench_tests::systems::System;
use bench_tests::workloads::stress;
use rstest::rstest;

/// One ramp at a time: two on 2 cores would share them and shift each other's capacity.
static ONE_RAMP: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[rstest]
fn the_ramp_completes_exactly_and_each_step_is_judged(
    #[values(System::ASYNCTASQ, System::CELERY)] system: System,
) {
    let cases: Vec<_> = common::scenario_cases("stress")
        .into_iter()
        .filter(|c| c.variant.system == system)
        .collect();
    assert_eq!(cases.len(), 1, "one continuous ramp per system");
    let case = &cases[0];
    let out = {
        let _alone = ONE_RAMP.lock().unwrap_or_else(|e| e.into_inner());
        common::run_ci(case)
    };
    common::assert_exact(case, &out);
    let result = &out.result;
    let steps = result
        .metrics
        .stress_steps
        .as_ref()
        .expect("the stress workload wrote its steps");
    let profile = common::ci_profile();
    assert_eq!(steps.len(), profile.stress.rates.len());
    let first_start = out.result.metrics.processing_time_from_spawn_seconds
        - out.result.metrics.processing_time_seconds;
    eprintln!("{system}: first task started {first_start:.2} s after worker spawn");
    for s in steps {
        eprintln!(
            "{system} step {:.0}/s: offered {:.0}/s, completed {:.0}/s, depth {:?}, p99 {:?} ms, lateness p99 {:.1} ms, saturated {}, producer short {}",
            s.target_rate, s.offered_rate, s.completion_rate, s.depth, s.latency_p99_ms,
            s.producer_lateness_p99_ms, s.saturated, s.producer_limited
        );
    }

    // The depth is read through the drain: readings after the ramp's last window, falling.
    let ramp_end_ms = (steps.last().unwrap().from_s + steps.last().unwrap().seconds) * 1000.0;
    let drain: Vec<_> = result
        .queue_depth
        .iter()
        .filter(|p| p.t_ms > ramp_end_ms)
        .collect();
    if system == System::CELERY {
        assert!(
            drain.len() >= 4 && drain.last().unwrap().depth < drain[0].depth,
            "the backlog drains after the producer's end: {drain:?}"
        );
    }
    assert!(
        result.queue_depth.len() >= 4 * steps.len(),
        "several readings per step"
    );

    // Far below capacity (200 tasks/s): the producer offers it and the pool keeps up.
    let low = &steps[0];
    assert!(!low.saturated && !low.producer_limited, "{low:?}");
    assert!(
        (low.completion_rate - low.target_rate).abs() / low.target_rate < stress::TOLERANCE,
        "{low:?}"
    );
    assert!(low.depth.is_some() && low.rss_mb.is_some(), "{low:?}");

    // Above Celery threads' capacity: completions fall short and the backlog grows.
    let high = steps.last().unwrap();
    if system == System::CELERY {
        assert!(high.saturated, "{high:?}");
        assert!(high.depth.unwrap().per_sec > 0.0);
    }
    let ramps = stress::ramps(std::slice::from_ref(result));
    assert_eq!(ramps.len(), 1);
    assert_eq!(
        ramps[0].saturation_rate,
        steps.iter().find(|s| s.saturated).map(|s| s.target_rate)
    );
}
