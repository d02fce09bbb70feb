//! Success criteria: the seed plan's targets and claims, as named entries of a profile,
//! checked against a summary, with the measured value and its 95% CI. A criterion passes
//! only when the whole CI lies on the passing side of its threshold and fails only when the
//! whole CI lies on the other side; a CI across the threshold is "inconclusive". With fewer
//! than two runs there is no CI: "too few runs", never a pass. Latency criteria are judged
//! on paced runs only (drain and live latency is a queueing artefact).

use serde::{Deserialize, Serialize};

use crate::analysis::summary::{Group, Summary};

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Criterion {
    pub name: String,
    /// The claim in the plan's words, e.g. "throughput > 5,000 tasks/s".
    pub claim: String,
    pub scenario: String,
    pub metric: String,
    pub system: String,
    pub variant: Option<String>,
    pub driver: Option<String>,
    pub mode: Option<String>,
    /// A ratio criterion: `system`'s median over `versus`'s (e.g. a speed-up claim).
    pub versus: Option<String>,
    pub versus_variant: Option<String>,
    /// One of `>`, `>=`, `<`, `<=`, `between` (inclusive, with `threshold_high`).
    pub op: String,
    pub threshold: f64,
    pub threshold_high: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Verdict {
    pub name: String,
    pub claim: String,
    /// Which group or pair the value comes from.
    pub measured_on: String,
    pub value: Option<f64>,
    pub ci95_low: Option<f64>,
    pub ci95_high: Option<f64>,
    /// pass, fail, inconclusive, too few runs, or not-measured.
    pub status: String,
}

pub const PASS: &str = "pass";
pub const FAIL: &str = "fail";
pub const INCONCLUSIVE: &str = "inconclusive";
pub const TOO_FEW_RUNS: &str = "too few runs";
pub const NOT_MEASURED: &str = "not-measured";

impl Criterion {
    /// The passing values as an interval [low, high] with open or closed ends.
    fn passing(&self) -> (f64, bool, f64, bool) {
        let t = self.threshold;
        match self.op.as_str() {
            ">" => (t, false, f64::INFINITY, true),
            ">=" => (t, true, f64::INFINITY, true),
            "<" => (f64::NEG_INFINITY, true, t, false),
            "<=" => (f64::NEG_INFINITY, true, t, true),
            _ => (t, true, self.threshold_high.unwrap_or(f64::INFINITY), true),
        }
    }

    fn holds(&self, value: f64) -> bool {
        let (low, low_closed, high, high_closed) = self.passing();
        let above = if low_closed {
            value >= low
        } else {
            value > low
        };
        let below = if high_closed {
            value <= high
        } else {
            value < high
        };
        above && below
    }

    /// Pass when the whole 95% CI passes, fail when none of it does, else inconclusive.
    /// `runs` is the smaller side's run count.
    fn judge(&self, runs: usize, ci_low: f64, ci_high: f64) -> &'static str {
        if runs < 2 {
            return TOO_FEW_RUNS;
        }
        if !(ci_low.is_finite() && ci_high.is_finite()) {
            return INCONCLUSIVE;
        }
        let (lo, hi) = (ci_low.min(ci_high), ci_low.max(ci_high));
        let (low, _, high, _) = self.passing();
        // The passing values form one interval: a CI whose ends both pass lies inside it;
        // one whose ends both fail lies outside it unless it spans it (`between`).
        let spans = lo < low && hi > high;
        match (self.holds(lo), self.holds(hi)) {
            (true, true) => PASS,
            (false, false) if !spans => FAIL,
            _ => INCONCLUSIVE,
        }
    }

    /// Checks the operator and names before any run, so a typo fails early.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !matches!(self.op.as_str(), ">" | ">=" | "<" | "<=" | "between") {
            anyhow::bail!(
                "criterion '{}': unknown op '{}'; valid ops: >, >=, <, <=, between",
                self.name,
                self.op
            );
        }
        if self.op == "between" && self.threshold_high.is_none() {
            anyhow::bail!(
                "criterion '{}': op 'between' needs threshold_high",
                self.name
            );
        }
        if crate::analysis::summary::metric(&self.metric).is_none() {
            let valid: Vec<&str> = crate::analysis::summary::all_metrics()
                .iter()
                .map(|m| m.name)
                .collect();
            anyhow::bail!(
                "criterion '{}': unknown metric '{}'; valid metrics: {}",
                self.name,
                self.metric,
                valid.join(", ")
            );
        }
        Ok(())
    }

    /// What the criterion looks for, in words (for "not measured").
    fn selection(&self) -> String {
        let mut parts = vec![format!("scenario {}", self.scenario), self.system.clone()];
        for (what, filter) in [
            ("variant", &self.variant),
            ("driver", &self.driver),
            ("mode", &self.mode),
        ] {
            if let Some(value) = filter {
                parts.push(format!("{what} {value}"));
            }
        }
        if let Some(versus) = &self.versus {
            parts.push(format!(
                "versus {versus}{}",
                self.versus_variant
                    .as_ref()
                    .map_or(String::new(), |v| format!(" {v}"))
            ));
        }
        parts.join(", ")
    }

    /// An absent filter matches anything; a present one matches the value exactly or as its
    /// leading part (`process` matches the variant `process-c2`, `paced` the mode `paced`).
    fn optional(filter: &Option<String>, value: &str) -> bool {
        filter
            .as_deref()
            .is_none_or(|f| value == f || value.starts_with(&format!("{f}-")))
    }
}

/// A memory criterion is judged on PSS when the runs measured it: RSS counts the pages
/// prefork's children share once per child, PSS splits them. The group's PSS, if any.
fn pss_instead<'a>(summary: &'a Summary, g: &Group) -> Option<&'a Group> {
    if g.metric != "memory_rss_mb" {
        return None;
    }
    summary.groups.iter().find(|p| {
        p.metric == "memory_pss_mb"
            && (&p.scenario, &p.driver, &p.system, &p.variant, &p.mode)
                == (&g.scenario, &g.driver, &g.system, &g.variant, &g.mode)
    })
}

/// Whether a criterion on `metric` may be judged on runs of `mode` (latency: paced only).
fn judged_in(metric: &str, mode: &str) -> bool {
    crate::analysis::summary::metric(metric).is_none_or(|m| m.judged_in(mode))
}

/// One verdict per matching group (or pair); a criterion nothing matches is not-measured.
pub fn evaluate(criteria: &[Criterion], summary: &Summary) -> Vec<Verdict> {
    let mut verdicts = Vec::new();
    for c in criteria {
        let before = verdicts.len();
        match &c.versus {
            None => {
                for g in summary.groups.iter().filter(|g| {
                    g.scenario == c.scenario
                        && g.metric == c.metric
                        && g.system == c.system
                        && Criterion::optional(&c.variant, &g.variant)
                        && Criterion::optional(&c.driver, &g.driver)
                        && Criterion::optional(&c.mode, &g.mode)
                        && judged_in(&c.metric, &g.mode)
                }) {
                    let (g, what) = match pss_instead(summary, g) {
                        Some(pss) => (pss, " PSS"),
                        None => (g, ""),
                    };
                    verdicts.push(Verdict {
                        name: c.name.clone(),
                        claim: c.claim.clone(),
                        measured_on: format!(
                            "{} {} {} {} on {} (mean{what} of {})",
                            g.scenario, g.system, g.variant, g.mode, g.driver, g.n
                        ),
                        value: Some(g.mean),
                        ci95_low: Some(g.ci95_low),
                        ci95_high: Some(g.ci95_high),
                        status: c.judge(g.n, g.ci95_low, g.ci95_high).into(),
                    });
                }
            }
            Some(versus) => {
                for cmp in summary
                    .comparisons
                    .iter()
                    .filter(|p| p.scenario == c.scenario && p.metric == c.metric)
                {
                    // Comparisons are stored once per pair; read them in either direction.
                    let forward = (
                        cmp.ratio,
                        cmp.ratio_ci95_low,
                        cmp.ratio_ci95_high,
                        &cmp.a,
                        &cmp.variant_a,
                        &cmp.b,
                        &cmp.variant_b,
                    );
                    let backward = (
                        1.0 / cmp.ratio,
                        1.0 / cmp.ratio_ci95_high,
                        1.0 / cmp.ratio_ci95_low,
                        &cmp.b,
                        &cmp.variant_b,
                        &cmp.a,
                        &cmp.variant_a,
                    );
                    for (ratio, low, high, system_a, variant_a, system_b, variant_b) in
                        [forward, backward]
                    {
                        let matches = *system_a == c.system
                            && system_b == versus
                            && Criterion::optional(&c.variant, variant_a)
                            && Criterion::optional(&c.versus_variant, variant_b)
                            // No variant named on the other side: compare like with like.
                            && (c.versus_variant.is_some()
                                || crate::analysis::summary::same_sizes(variant_a, variant_b))
                            && Criterion::optional(&c.driver, &cmp.driver)
                            && Criterion::optional(&c.mode, &cmp.mode)
                            && judged_in(&c.metric, &cmp.mode);
                        if !matches {
                            continue;
                        }
                        verdicts.push(Verdict {
                            name: c.name.clone(),
                            claim: c.claim.clone(),
                            measured_on: format!(
                                "{} {system_a} {variant_a} / {system_b} {variant_b}, {} on {} (ratio of medians)",
                                c.scenario, cmp.mode, cmp.driver
                            ),
                            value: Some(ratio),
                            ci95_low: Some(low),
                            ci95_high: Some(high),
                            status: c.judge(cmp.n_a.min(cmp.n_b), low, high).into(),
                        });
                    }
                }
            }
        }
        if verdicts.len() == before {
            verdicts.push(Verdict {
                name: c.name.clone(),
                claim: c.claim.clone(),
                measured_on: if judged_in(&c.metric, c.mode.as_deref().unwrap_or("")) {
                    format!("no measured run matches: {}", c.selection())
                } else {
                    format!(
                        "no paced run matches: {} (latency is judged on paced runs only; in drain and live runs it is a queueing artefact)",
                        c.selection()
                    )
                },
                value: None,
                ci95_low: None,
                ci95_high: None,
                status: NOT_MEASURED.into(),
            });
        }
    }
    verdicts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::summary::Comparison;

    fn group(system: &str, metric: &str, mean: f64) -> Group {
        Group {
            scenario: "throughput".into(),
            driver: "redis".into(),
            system: system.into(),
            variant: "v".into(),
            mode: "drain".into(),
            metric: metric.into(),
            n: 5,
            mean,
            median: mean,
            stddev: 1.0,
            min: mean - 1.0,
            max: mean + 1.0,
            p95: mean,
            p99: mean,
            ci95_low: mean - 2.0,
            ci95_high: mean + 2.0,
            outliers: vec![],
            excluded: vec![],
        }
    }

    fn criterion(system: &str, op: &str, threshold: f64, versus: Option<&str>) -> Criterion {
        Criterion {
            name: "c".into(),
            claim: "claim".into(),
            scenario: "throughput".into(),
            metric: "throughput_tasks_per_sec".into(),
            system: system.into(),
            variant: None,
            driver: None,
            mode: None,
            versus: versus.map(String::from),
            versus_variant: None,
            op: op.into(),
            threshold,
            threshold_high: Some(3.0),
        }
    }

    #[test]
    fn value_criteria_pass_fail_and_not_measured() {
        let summary = Summary {
            groups: vec![group("asynctasq", "throughput_tasks_per_sec", 4000.0)],
            ..Summary::default()
        };
        let v = evaluate(&[criterion("asynctasq", ">", 5000.0, None)], &summary);
        assert_eq!((v[0].status.as_str(), v[0].value), ("fail", Some(4000.0)));
        let v = evaluate(&[criterion("asynctasq", ">", 1000.0, None)], &summary);
        assert_eq!(v[0].status, "pass");
        let v = evaluate(&[criterion("celery", ">", 1000.0, None)], &summary);
        assert_eq!((v[0].status.as_str(), v[0].value), ("not-measured", None));
    }

    #[test]
    fn ratio_criteria_read_pairs_in_either_direction() {
        let cmp = Comparison {
            a: "asynctasq".into(),
            b: "celery".into(),
            scenario: "throughput".into(),
            driver: "redis".into(),
            mode: "drain".into(),
            variant_a: "v".into(),
            variant_b: "w".into(),
            metric: "throughput_tasks_per_sec".into(),
            n_a: 5,
            n_b: 5,
            p_holm: 0.01,
            significant: true,
            ratio: 2.5,
            ratio_ci95_low: 2.0,
            ratio_ci95_high: 3.2,
            welch_p: 0.01,
            mann_whitney_p: 0.01,
            cohens_d: 3.0,
            verdict: String::new(),
        };
        let summary = Summary {
            comparisons: vec![cmp.clone()],
            ..Summary::default()
        };
        // 2.5 lies in [2, 3] but its CI [2.0, 3.2] does not: the old code said "pass".
        let v = evaluate(
            &[criterion("asynctasq", "between", 2.0, Some("celery"))],
            &summary,
        );
        assert_eq!(
            (v[0].status.as_str(), v[0].value),
            ("inconclusive", Some(2.5))
        );
        let mut wide = criterion("asynctasq", "between", 1.9, Some("celery"));
        wide.threshold_high = Some(3.5);
        assert_eq!(evaluate(&[wide.clone()], &summary)[0].status, "pass");
        let few = Summary {
            comparisons: vec![Comparison { n_b: 1, ..cmp }],
            ..Summary::default()
        };
        assert_eq!(evaluate(&[wide], &few)[0].status, "too few runs");
        let v = evaluate(
            &[criterion("celery", "<", 1.0, Some("asynctasq"))],
            &summary,
        );
        assert_eq!(v[0].status, "pass");
        assert!((v[0].value.unwrap() - 0.4).abs() < 1e-12);
        assert!((v[0].ci95_low.unwrap() - 1.0 / 3.2).abs() < 1e-12);
    }

    #[test]
    fn a_ci_across_the_threshold_is_inconclusive_and_one_run_is_too_few() {
        // mean 4000, CI [3998, 4002]
        let summary = Summary {
            groups: vec![group("asynctasq", "throughput_tasks_per_sec", 4000.0)],
            ..Summary::default()
        };
        let status = |op: &str, t: f64| {
            evaluate(&[criterion("asynctasq", op, t, None)], &summary)[0]
                .status
                .clone()
        };
        // The old code judged the mean alone: 4000 > 3999 passed.
        assert_eq!(status(">", 3999.0), "inconclusive");
        assert_eq!(status("<", 4001.0), "inconclusive");
        assert_eq!(status(">", 3997.0), "pass");
        assert_eq!(status(">", 4002.0), "fail");
        assert_eq!(status("<=", 3997.0), "fail");
        assert_eq!(status("<=", 3998.0), "inconclusive");
        let mut one = group("asynctasq", "throughput_tasks_per_sec", 4000.0);
        one.n = 1;
        (one.ci95_low, one.ci95_high) = (4000.0, 4000.0);
        let single = Summary {
            groups: vec![one],
            ..Summary::default()
        };
        let v = evaluate(&[criterion("asynctasq", ">", 1000.0, None)], &single);
        assert_eq!(v[0].status, "too few runs", "one run passed before");
    }

    #[test]
    fn latency_is_judged_on_paced_runs_only() {
        let mut drain = group("asynctasq", "latency_p99_ms", 10.0);
        drain.mode = "drain".into();
        let mut paced = drain.clone();
        paced.mode = "paced".into();
        paced.mean = 500.0;
        (paced.ci95_low, paced.ci95_high) = (450.0, 550.0);
        let mut c = criterion("asynctasq", "<", 300.0, None);
        c.metric = "latency_p99_ms".into();
        let only_drain = Summary {
            groups: vec![drain.clone()],
            ..Summary::default()
        };
        let v = evaluate(std::slice::from_ref(&c), &only_drain);
        assert_eq!(v[0].status, "not-measured", "drain latency passed before");
        assert!(v[0].measured_on.contains("paced"), "{}", v[0].measured_on);
        let both = Summary {
            groups: vec![drain, paced],
            ..Summary::default()
        };
        let v = evaluate(&[c], &both);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].status, "fail");
    }

    #[test]
    fn memory_criteria_use_pss_when_the_runs_measured_it() {
        let mut c = criterion("asynctasq", "<", 100.0, None);
        c.metric = "memory_rss_mb".into();
        let rss = group("asynctasq", "memory_rss_mb", 150.0);
        let only_rss = Summary {
            groups: vec![rss.clone()],
            ..Summary::default()
        };
        assert_eq!(
            evaluate(std::slice::from_ref(&c), &only_rss)[0].status,
            "fail"
        );
        let both = Summary {
            groups: vec![rss, group("asynctasq", "memory_pss_mb", 60.0)],
            ..Summary::default()
        };
        let v = evaluate(&[c], &both);
        assert_eq!((v[0].status.as_str(), v[0].value), ("pass", Some(60.0)));
        assert!(v[0].measured_on.contains("PSS"), "{}", v[0].measured_on);
    }

    #[test]
    fn validate_rejects_unknown_ops_and_metrics() {
        let mut c = criterion("asynctasq", "~", 1.0, None);
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("unknown op '~'"));
        c.op = ">".into();
        c.metric = "speed".into();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("unknown metric 'speed'"));
    }
}
