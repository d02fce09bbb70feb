//! Scenario 7, pipeline: orders through validate → charge → email → inventory, paced
//! (open loop) at the profile's order rates.
//!
//! - validate parses and checks a 3.5 KB JSON order;
//! - charge fails when the seeded [`Plan`] says so (5% of attempts), retried by each system's
//!   own mechanism up to 3 attempts, 1 s apart (AsyncTasQ: `max_attempts` and its fixed retry
//!   delay; Celery: `autoretry_for`, `max_retries`, a fixed countdown);
//! - email is a GET to the harness's mock HTTP server;
//! - inventory is an UPDATE on a PostgreSQL database created for the run and dropped after.
//!
//! AsyncTasQ's steps each dispatch the next; Celery sends one `chain()` per order (acking
//! late: at-least-once, as AsyncTasQ). The tasks are in
//! `fixtures/python/tasq_fixtures/pipeline_{asynctasq,celery}.py`, the plan's Python twin in
//! `pipeline_plan.py`.
//!
//! Every step records itself under its own sequence number (the layout is in
//! `pipeline_plan.py`), so the collector counts each step of each order exactly: the run
//! waits for every record the plan foresees (validate, each charge attempt, each permanent
//! failure, email and inventory of each charged order), and any record it does not foresee
//! counts as foreign. From the records: end-to-end latency per order (from its intended time
//! to its inventory update), each step's latency from its hand-off, the retries made and
//! the orders that failed permanently, each against the plan. After the run the inventory
//! table must show every charged order applied exactly once and no failed order applied.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::{Connection, PgConnection};

use super::io::HttpService;
use super::{Case, Finished, Measure, RunPart, Workload};
use crate::analysis::stats::Better;
use crate::harness::Harness;
use crate::measure::collector::TaskRecord;
use crate::profile::Profile;
use crate::provision::brokers::{block_on, Driver, Namespace};
use crate::report;
use crate::result::{Configuration, Metrics};
use crate::run::{self, RunOutput, RunRequest};
use crate::systems::{celery, System, Variant};

/// The seed of every run's charge failures (recorded in each result). Chosen so that the
/// ci size already holds an order that fails permanently (order 50): with 5% of attempts
/// failing and 3 attempts, about 1 order in 8,000 does.
pub const SEED: u64 = 20_261_218;
/// A charge attempt fails with this probability, in basis points (5%).
pub const CHARGE_FAILURE_BP: u64 = 500;
/// Attempts per charge, the first included.
pub const MAX_ATTEMPTS: u32 = 3;
/// Seconds between a failed charge attempt and its retry, fixed (AsyncTasQ takes whole seconds).
pub const RETRY_DELAY_S: u64 = 1;
/// The fixture task the producer sends (tasq_fixtures.pipeline_<system>.order).
const TASK: &str = "pipeline:order";
/// Creating the inventory table, or reading it back, takes milliseconds.
const DB_LIMIT: Duration = Duration::from_secs(30);

pub struct Pipeline;

/// The profile's `[pipeline]` section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Sizes {
    /// Orders per run.
    pub orders: u64,
    /// Orders per second the producer sends at (open loop), one case per rate and system.
    pub rates: Vec<f64>,
    /// AsyncTasQ's concurrency and Celery's threads.
    pub concurrency: u32,
    /// Latency the mock HTTP server injects into each email call.
    pub email_latency_ms: u64,
}

/// One step of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    Validate,
    /// Charge attempt k (0-based).
    Charge(u32),
    /// The system's failure hook after the last attempt failed.
    Failed,
    Email,
    Inventory,
}

/// The steps whose latency is reported, in pipeline order.
pub const STEPS: [&str; 4] = ["validate", "charge", "email", "inventory"];

/// Which charge attempts fail and so which records a run must produce; the twin of
/// `tasq_fixtures/pipeline_plan.py` (same hash, same layout of sequence numbers).
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub seed: u64,
    pub orders: u64,
    pub fail_bp: u64,
    pub max_attempts: u32,
    /// Charge attempts of each order.
    pub attempts: Vec<u32>,
    /// Orders whose every attempt fails, ascending.
    pub failed: Vec<u64>,
    /// Orders charged, ascending.
    pub charged: Vec<u64>,
    /// Sequence number of each order's first charge attempt, minus `orders`.
    first_attempt: Vec<u64>,
    pub total_attempts: u64,
}

/// Whether charge attempt `attempt` (0-based) of `order` fails.
pub fn attempt_fails(seed: u64, order: u64, attempt: u32, fail_bp: u64) -> bool {
    let digest = Sha256::digest(format!("{seed}:{order}:{attempt}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first) % 10_000 < fail_bp
}

impl Plan {
    pub fn new(seed: u64, orders: u64, fail_bp: u64, max_attempts: u32) -> Plan {
        let mut plan = Plan {
            seed,
            orders,
            fail_bp,
            max_attempts,
            attempts: Vec::with_capacity(orders as usize),
            failed: Vec::new(),
            charged: Vec::with_capacity(orders as usize),
            first_attempt: Vec::with_capacity(orders as usize),
            total_attempts: 0,
        };
        for order in 0..orders {
            plan.push(order);
        }
        plan
    }

    /// The plan of this workload's constants for `orders`.
    pub fn of(orders: u64) -> Plan {
        Plan::new(SEED, orders, CHARGE_FAILURE_BP, MAX_ATTEMPTS)
    }

    fn push(&mut self, order: u64) {
        let mut attempt = 0;
        let failed = loop {
            let fails = attempt_fails(self.seed, order, attempt, self.fail_bp);
            attempt += 1;
            if !fails {
                break false;
            }
            if attempt == self.max_attempts {
                break true;
            }
        };
        if failed {
            self.failed.push(order);
        } else {
            self.charged.push(order);
        }
        self.first_attempt.push(self.total_attempts);
        self.total_attempts += u64::from(attempt);
        self.attempts.push(attempt);
        self.orders = order + 1;
    }

    /// The plan (of this workload's constants) whose run makes `records` records: a case
    /// carries only its record count, and each order adds at least 4, so there is at most one.
    pub fn for_records(records: u64) -> Result<Plan> {
        let mut plan = Plan::of(0);
        while plan.records() < records {
            plan.push(plan.orders);
        }
        if plan.records() != records {
            bail!("{records} records is no pipeline run's record count (a case's task_count comes from Plan::records)");
        }
        Ok(plan)
    }

    /// Every record the run must produce: validate, each attempt, each permanent failure,
    /// email and inventory of each charged order.
    pub fn records(&self) -> u64 {
        self.orders + self.total_attempts + self.failed.len() as u64 + 2 * self.charged.len() as u64
    }

    pub fn retries(&self) -> u64 {
        self.total_attempts - self.orders
    }

    /// The order and step of sequence number `seq`; None past the end (a record the plan
    /// does not foresee).
    pub fn slot(&self, seq: u64) -> Option<(u64, Step)> {
        let n = self.orders;
        let attempts_end = n + self.total_attempts;
        let failed_end = attempts_end + self.failed.len() as u64;
        let charged = self.charged.len() as u64;
        if seq < n {
            Some((seq, Step::Validate))
        } else if seq < attempts_end {
            let index = seq - n;
            let order = self.first_attempt.partition_point(|&first| first <= index) - 1;
            Some((
                order as u64,
                Step::Charge((index - self.first_attempt[order]) as u32),
            ))
        } else if seq < failed_end {
            Some((self.failed[(seq - attempts_end) as usize], Step::Failed))
        } else if seq < failed_end + charged {
            Some((self.charged[(seq - failed_end) as usize], Step::Email))
        } else if seq < failed_end + 2 * charged {
            Some((
                self.charged[(seq - failed_end - charged) as usize],
                Step::Inventory,
            ))
        } else {
            None
        }
    }
}

/// What the records of a run show, against the plan.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Analysis {
    /// Intended time to inventory end, per order that completed, ns.
    pub order_ns: Vec<u64>,
    /// Per step (STEPS order): hand-off to end, ns (charge: its last attempt).
    pub step_ns: [Vec<u64>; 4],
    /// A failed attempt's end to its retry's start, ns.
    pub retry_wait_ns: Vec<u64>,
    pub retries: u64,
    pub failed_orders: Vec<u64>,
}

impl Analysis {
    pub fn of(plan: &Plan, records: &[TaskRecord]) -> Analysis {
        #[derive(Default, Clone)]
        struct Order {
            validate: Option<TaskRecord>,
            attempts: BTreeMap<u32, TaskRecord>,
            inventory: Option<TaskRecord>,
            email: Option<TaskRecord>,
        }
        let mut orders: Vec<Order> = vec![Order::default(); plan.orders as usize];
        let mut analysis = Analysis::default();
        for r in records {
            let Some((order, step)) = plan.slot(r.seq) else {
                continue;
            };
            let o = &mut orders[order as usize];
            match step {
                Step::Validate => o.validate = Some(*r),
                Step::Charge(k) => {
                    if k > 0 {
                        analysis.retries += 1;
                    }
                    o.attempts.insert(k, *r);
                }
                Step::Failed => analysis.failed_orders.push(order),
                Step::Email => o.email = Some(*r),
                Step::Inventory => o.inventory = Some(*r),
            }
        }
        analysis.failed_orders.sort_unstable();
        let latency = |r: &TaskRecord| r.end_ns.saturating_sub(r.intended_ns);
        for o in &orders {
            if let (Some(v), Some(i)) = (&o.validate, &o.inventory) {
                analysis
                    .order_ns
                    .push(i.end_ns.saturating_sub(v.intended_ns));
            }
            let last_attempt = o.attempts.values().next_back();
            for (i, r) in [
                o.validate.as_ref(),
                last_attempt,
                o.email.as_ref(),
                o.inventory.as_ref(),
            ]
            .into_iter()
            .enumerate()
            {
                if let Some(r) = r {
                    analysis.step_ns[i].push(latency(r));
                }
            }
            for (k, r) in &o.attempts {
                if let Some(before) = k.checked_sub(1).and_then(|k| o.attempts.get(&k)) {
                    analysis
                        .retry_wait_ns
                        .push(r.start_ns.saturating_sub(before.end_ns));
                }
            }
        }
        analysis
    }

    /// Where the run departs from the plan (each an error of the run).
    pub fn departures(&self, plan: &Plan) -> Vec<String> {
        let mut out = Vec::new();
        if self.retries != plan.retries() {
            out.push(format!(
                "the seed foresees {} charge retries; the system made {}",
                plan.retries(),
                self.retries
            ));
        }
        if self.failed_orders != plan.failed {
            out.push(format!(
                "the seed foresees orders {:?} failing permanently; the system's failure hook reported {:?}",
                plan.failed, self.failed_orders
            ));
        }
        let delay_ns = RETRY_DELAY_S * 1_000_000_000;
        if let Some(min) = self.retry_wait_ns.iter().min() {
            // Either system may come back later than its delay, never sooner.
            if *min < delay_ns * 9 / 10 {
                out.push(format!(
                    "a charge retry started {:.1} ms after the failed attempt, sooner than the {RETRY_DELAY_S} s retry delay: the delay setting did not take effect",
                    *min as f64 / 1e6
                ));
            }
        }
        out
    }
}

/// The value at quantile `q` of `values` (nearest rank), in ms; NaN when empty.
pub fn quantile_ms(values: &[u64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64 / 1e6
}

/// The run's PostgreSQL database for the inventory step (one row per order, `applied` 0),
/// from the harness's PostgreSQL broker; dropped with this value.
pub struct InventoryDb {
    pub url: String,
    /// The database's name (recorded in the result, so a test can see it is gone).
    pub name: String,
    pub source: String,
    _namespace: Box<dyn Namespace>,
}

impl InventoryDb {
    pub fn create(h: &Harness, orders: u64) -> Result<InventoryDb> {
        let broker = h.broker(Driver::Postgres).context(
            "the pipeline's inventory step updates a PostgreSQL table: set BENCH_POSTGRES_URL or start PostgreSQL on 127.0.0.1:5432",
        )?;
        let source = broker.info().source.clone();
        let namespace = broker.namespace(&format!("pipe{:08x}", rand::random::<u32>()))?;
        let url = namespace.connection_url();
        let name = url
            .rsplit('/')
            .next()
            .and_then(|path| path.split('?').next())
            .unwrap_or_default()
            .to_string();
        let statement = format!(
            "CREATE TABLE inventory (order_id integer PRIMARY KEY, applied integer NOT NULL DEFAULT 0);
             INSERT INTO inventory (order_id) SELECT generate_series(0, {})",
            orders as i64 - 1
        );
        execute(&url, statement).context("creating the inventory table")?;
        Ok(InventoryDb {
            url,
            name,
            source,
            _namespace: namespace,
        })
    }
}

/// Runs `statement` (one or more SQL statements) on the database at `url`.
pub fn execute(url: &str, statement: String) -> Result<()> {
    let url = url.to_string();
    block_on(DB_LIMIT, async move {
        let mut conn = PgConnection::connect(&url).await?;
        sqlx::raw_sql(&statement).execute(&mut conn).await?;
        Ok(())
    })
}

/// The inventory table after a run, against the plan: every charged order applied exactly
/// once, no failed order applied, no row missing.
#[derive(Debug, Clone, PartialEq)]
pub struct InventoryCheck {
    /// Orders applied exactly once.
    pub applied_once: u64,
    pub problems: Vec<String>,
}

pub fn check_inventory(url: &str, plan: &Plan) -> Result<InventoryCheck> {
    let url = url.to_string();
    let rows: Vec<(i32, i32)> = block_on(DB_LIMIT, async move {
        let mut conn = PgConnection::connect(&url).await?;
        Ok(
            sqlx::query_as("SELECT order_id, applied FROM inventory ORDER BY order_id")
                .fetch_all(&mut conn)
                .await?,
        )
    })
    .context("reading the inventory table")?;
    let applied: BTreeMap<u64, i64> = rows
        .into_iter()
        .map(|(order, n)| (order as u64, i64::from(n)))
        .collect();
    let mut doubled = Vec::new();
    let mut lost = Vec::new();
    let mut of_failed = Vec::new();
    let mut missing = Vec::new();
    let mut applied_once = 0;
    for order in 0..plan.orders {
        let failed = plan.failed.binary_search(&order).is_ok();
        match (applied.get(&order).copied(), failed) {
            (None, _) => missing.push(order),
            (Some(1), false) => applied_once += 1,
            (Some(0), false) => lost.push(order),
            (Some(_), false) => doubled.push(order),
            (Some(0), true) => {}
            (Some(_), true) => of_failed.push(order),
        }
    }
    let extra = applied.len() as u64 - (plan.orders - missing.len() as u64);
    let list = |orders: &[u64]| -> String {
        let shown: Vec<String> = orders.iter().take(10).map(u64::to_string).collect();
        let more = if orders.len() > 10 { ", ..." } else { "" };
        format!("{} ({}{more})", orders.len(), shown.join(", "))
    };
    let mut problems = Vec::new();
    for (orders, what) in [
        (&doubled, "charged orders applied more than once"),
        (&lost, "charged orders never applied"),
        (&of_failed, "permanently failed orders applied"),
        (&missing, "orders missing from the inventory table"),
    ] {
        if !orders.is_empty() {
            problems.push(format!("inventory: {} {what}", list(orders)));
        }
    }
    if extra > 0 {
        problems.push(format!(
            "inventory: {extra} rows of orders beyond the run's {}",
            plan.orders
        ));
    }
    Ok(InventoryCheck {
        applied_once,
        problems,
    })
}

/// What a pipeline run gets from [`Pipeline::run`] before the engine starts it.
struct Handoff {
    db_url: String,
    db_name: String,
    db_source: String,
}

thread_local! {
    // The engine calls start_run on the thread that called Pipeline::run.
    static HANDOFF: RefCell<Option<Handoff>> = const { RefCell::new(None) };
}

/// Clears the hand-off when the run ends, however it ends.
struct HandoffGuard;

impl Drop for HandoffGuard {
    fn drop(&mut self) {
        HANDOFF.with(|slot| slot.borrow_mut().take());
    }
}

static MEASURES: [Measure; 15] = [
    Measure {
        name: "order_latency_p50_ms",
        better: Better::Lower,
        about: "end-to-end latency per order, from its intended time to its inventory update, p50 (completed orders)",
    },
    Measure {
        name: "order_latency_p99_ms",
        better: Better::Lower,
        about: "end-to-end latency per order, from its intended time to its inventory update, p99 (completed orders)",
    },
    Measure {
        name: "validate_latency_p50_ms",
        better: Better::Lower,
        about: "validate step: order's intended time to the step's end, p50",
    },
    Measure {
        name: "validate_latency_p99_ms",
        better: Better::Lower,
        about: "validate step: order's intended time to the step's end, p99",
    },
    Measure {
        name: "charge_latency_p50_ms",
        better: Better::Lower,
        about: "charge step: hand-off from validate to the end of its last attempt (retries included), p50",
    },
    Measure {
        name: "charge_latency_p99_ms",
        better: Better::Lower,
        about: "charge step: hand-off from validate to the end of its last attempt (retries included), p99",
    },
    Measure {
        name: "email_latency_p50_ms",
        better: Better::Lower,
        about: "email step: hand-off from charge to the end of its HTTP call, p50",
    },
    Measure {
        name: "email_latency_p99_ms",
        better: Better::Lower,
        about: "email step: hand-off from charge to the end of its HTTP call, p99",
    },
    Measure {
        name: "inventory_latency_p50_ms",
        better: Better::Lower,
        about: "inventory step: hand-off from email to the end of its UPDATE, p50",
    },
    Measure {
        name: "inventory_latency_p99_ms",
        better: Better::Lower,
        about: "inventory step: hand-off from email to the end of its UPDATE, p99",
    },
    Measure {
        name: "charge_retry_wait_p50_ms",
        better: Better::Lower,
        about: "a failed charge attempt's end to its retry's start, p50 (the retry delay as delivered; configured 1 s)",
    },
    Measure {
        name: "charge_retries",
        better: Better::Neither,
        about: "charge retries the system made (must equal charge_retries_predicted)",
    },
    Measure {
        name: "charge_retries_predicted",
        better: Better::Neither,
        about: "charge retries the seed foresees",
    },
    Measure {
        name: "orders_failed_permanently",
        better: Better::Neither,
        about: "orders the system's failure hook reported after the last attempt (must equal orders_failed_predicted)",
    },
    Measure {
        name: "orders_failed_predicted",
        better: Better::Neither,
        about: "orders the seed foresees failing every attempt",
    },
];

impl Workload for Pipeline {
    fn name(&self) -> &'static str {
        "pipeline"
    }

    /// The median order's latency: its p99 is dominated by the orders that waited for a
    /// 1 s retry, whose share varies only with the seed, and by when the retry delay fires.
    fn primary_metric(&self) -> Option<&'static str> {
        Some("order_latency_p50_ms")
    }

    fn measures(&self) -> &'static [Measure] {
        &MEASURES
    }

    /// Both systems at each rate, paced: AsyncTasQ (asyncio) and Celery threads acking late,
    /// at the same concurrency, both with httpx for the email call.
    fn cases(&self, profile: &Profile, driver: Driver, _cpus: u32) -> Vec<Case> {
        let sizes = &profile.pipeline;
        let records = Plan::of(sizes.orders).records();
        let mut cases = Vec::new();
        for &rate in &sizes.rates {
            for variant in variants(sizes.concurrency) {
                let mut case =
                    Case::new(self.name(), driver, variant, TASK, records, profile).paced_at(rate);
                case.http_latency_ms = Some(sizes.email_latency_ms);
                cases.push(case);
            }
        }
        cases
    }

    fn validate_profile(&self, profile: &Profile, file: &str) -> Result<()> {
        let s = &profile.pipeline;
        if !(1..=1_000_000).contains(&s.orders) {
            bail!(
                "{file}: pipeline.orders is {}; give 1 to 1,000,000 orders per run",
                s.orders
            );
        }
        if s.rates.is_empty() {
            bail!("{file}: pipeline.rates is empty; give the order rates to pace at, e.g. [50.0, 150.0]");
        }
        if let Some(bad) = s.rates.iter().find(|r| !(**r > 0.0 && **r <= 100_000.0)) {
            bail!("{file}: pipeline.rates holds {bad}; give orders per second in (0, 100000]");
        }
        if !(1..=1000).contains(&s.concurrency) {
            bail!(
                "{file}: pipeline.concurrency is {}; give 1 to 1,000",
                s.concurrency
            );
        }
        if s.email_latency_ms > 10_000 {
            bail!(
                "{file}: pipeline.email_latency_ms is {}; give 0 to 10,000 ms",
                s.email_latency_ms
            );
        }
        let slowest = s.rates.iter().copied().fold(f64::INFINITY, f64::min);
        let seconds = s.orders as f64 / slowest;
        if seconds > profile.run_timeout_secs as f64 {
            bail!(
                "{file}: pipeline.orders {} at {slowest} orders/s take {seconds:.0} s, more than run_timeout_secs {}; send fewer orders or raise the rate",
                s.orders,
                profile.run_timeout_secs
            );
        }
        Ok(())
    }

    fn start_run(&self, case: &Case, _dir: &Path) -> Result<Box<dyn RunPart>> {
        let Some(handoff) = HANDOFF.with(|slot| slot.borrow_mut().take()) else {
            bail!("a pipeline run starts through Workload::run (run::run), which creates its inventory database; run::run_once alone has none");
        };
        let plan = Plan::for_records(case.task_count)?;
        Ok(Box::new(PipelineRun {
            http: HttpService::start(case, plan.charged.len() as u64)?,
            plan,
            system: case.variant.system,
            concurrency: case.variant.concurrency,
            db_url: handoff.db_url,
            db_name: handoff.db_name,
            db_source: handoff.db_source,
        }))
    }

    /// The engine's run, with the run's inventory database around it.
    fn run(
        &self,
        h: &Harness,
        req: &RunRequest,
        on_progress: &mut dyn FnMut(u64),
    ) -> Result<RunOutput> {
        let plan = Plan::for_records(req.case.task_count)?;
        let db = InventoryDb::create(h, plan.orders)?;
        let _clear = HandoffGuard;
        HANDOFF.with(|slot| {
            *slot.borrow_mut() = Some(Handoff {
                db_url: db.url.clone(),
                db_name: db.name.clone(),
                db_source: db.source.clone(),
            })
        });
        run::run_once(h, req, on_progress)
    }

    fn common_table(&self) -> bool {
        false
    }

    fn report_section(&self, place: &report::Place) -> String {
        let mut md = String::new();
        let _ = writeln!(
            md,
            "Each order: validate (JSON check) → charge (5% of attempts fail, from seed {SEED}; up to {MAX_ATTEMPTS} attempts, {RETRY_DELAY_S} s apart, by each system's own retry) → email (HTTP GET to the mock server) → inventory (UPDATE on PostgreSQL). \
             Paced (open loop) at each order rate; latency from each order's intended time. A step's latency runs from its hand-off (the previous step's end) to its own end; charge includes its retries. \
             Every run is checked against the seed: each step's record exactly once, the retries and the orders that failed permanently as foreseen, and the inventory table with every charged order applied exactly once (an invalid run is listed under \"Excluded runs\").\n"
        );
        let _ = writeln!(md, "| system | variant | n | order p50 ms (95% CI) | order p99 ms (95% CI) | validate p50/p99 | charge p50/p99 | email p50/p99 | inventory p50/p99 | retry wait p50 ms | retries (seed) | failed orders (seed) | producer late p99 ms |");
        let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        for k in place.keys {
            let g = |m: &str| report::mean_of(place.stats, k, m);
            let Some(p50) = g("order_latency_p50_ms") else {
                continue; // every run of the group was excluded
            };
            let med = |m: &str, digits| report::num(g(m).map_or(f64::NAN, |x| x.median), digits);
            let pair = |step: &str| {
                format!(
                    "{} / {}",
                    med(&format!("{step}_latency_p50_ms"), 1),
                    med(&format!("{step}_latency_p99_ms"), 1)
                )
            };
            // How late the producer sent against its schedule (worst run): counted in the
            // orders' latency, as the open loop must; Celery's producer builds each chain.
            let late = place.groups[*k]
                .iter()
                .filter_map(|r| r.metrics.producer_lateness_p99_ms)
                .fold(f64::NAN, f64::max);
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} ({}) | {} ({}) | {} |",
                k.system,
                k.variant,
                p50.n,
                report::fmt_ci_digits(Some(p50), 1),
                report::fmt_ci_digits(g("order_latency_p99_ms"), 1),
                pair("validate"),
                pair("charge"),
                pair("email"),
                pair("inventory"),
                med("charge_retry_wait_p50_ms", 0),
                med("charge_retries", 0),
                med("charge_retries_predicted", 0),
                med("orders_failed_permanently", 0),
                med("orders_failed_predicted", 0),
                report::num(late, 1),
            );
        }
        let _ = writeln!(
            md,
            "\nStep latencies are medians over runs of each run's p50 / p99, in ms. The common `latency` figures of these runs are the orders' end-to-end latency; their `.hgrm` files hold every step record's latency from its hand-off."
        );
        md
    }

    fn charts(&self, place: &report::ChartPlace) -> Result<Vec<(String, String)>> {
        use report::charts::{Bar, Series};
        let title_place = place.name.replacen('-', " on ", 1);
        let mut out = Vec::new();
        for quantile in ["p50", "p99"] {
            let mut bars = Vec::new();
            for k in place.keys {
                for step in STEPS {
                    if let Some(g) =
                        report::mean_of(place.stats, k, &format!("{step}_latency_{quantile}_ms"))
                    {
                        bars.push(Bar {
                            label: format!("{} {} {step}", k.system, k.variant),
                            key: k.system.clone(),
                            value: g.mean,
                            ci_low: g.ci95_low,
                            ci_high: g.ci95_high,
                        });
                    }
                }
            }
            if !bars.is_empty() {
                out.push((
                    format!("pipeline-steps-{quantile}-{}.svg", place.name),
                    report::charts::bars_with_ci(
                        &format!(
                            "Latency per step, {quantile}, {title_place} (mean over runs, 95% CI)"
                        ),
                        "ms",
                        &bars,
                    )?,
                ));
            }
        }
        let mut lines: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        for k in place.keys {
            let Some(rate) = place.groups[*k]
                .first()
                .and_then(|r| r.metrics.paced_target_rate)
            else {
                continue;
            };
            for quantile in ["p50", "p99"] {
                if let Some(g) =
                    report::mean_of(place.stats, k, &format!("order_latency_{quantile}_ms"))
                {
                    lines
                        .entry(format!("{} {quantile}", k.system))
                        .or_default()
                        .push((rate, g.median));
                }
            }
        }
        if !lines.is_empty() {
            let series: Vec<Series> = lines
                .into_iter()
                .map(|(name, mut points)| {
                    points.sort_by(|a, b| a.0.total_cmp(&b.0));
                    Series { name, points }
                })
                .collect();
            out.push((
                format!("pipeline-orders-{}.svg", place.name),
                report::charts::lines(
                    &format!(
                        "End-to-end latency per order vs order rate, {title_place} (median run)"
                    ),
                    "orders/s",
                    "ms",
                    &series,
                )?,
            ));
        }
        Ok(out)
    }
}

/// AsyncTasQ (asyncio) and Celery threads acking late, both with httpx.
pub fn variants(concurrency: u32) -> Vec<Variant> {
    vec![
        Variant::new(System::ASYNCTASQ, "asyncio", concurrency).with("http", "httpx"),
        celery::acking_late("threads", concurrency).with("http", "httpx"),
    ]
}

struct PipelineRun {
    plan: Plan,
    http: HttpService,
    system: System,
    concurrency: u32,
    db_url: String,
    db_name: String,
    db_source: String,
}

impl RunPart for PipelineRun {
    fn task_env(&self) -> Vec<(String, String)> {
        let mut env = self.http.task_env();
        env.extend(
            [
                ("BENCH_TASK_MODULES", "pipeline".to_string()),
                ("BENCH_PIPELINE_SEED", self.plan.seed.to_string()),
                ("BENCH_PIPELINE_ORDERS", self.plan.orders.to_string()),
                ("BENCH_PIPELINE_FAIL_BP", self.plan.fail_bp.to_string()),
                (
                    "BENCH_PIPELINE_MAX_ATTEMPTS",
                    self.plan.max_attempts.to_string(),
                ),
                ("BENCH_PIPELINE_RETRY_DELAY_S", RETRY_DELAY_S.to_string()),
                ("BENCH_PIPELINE_DB_URL", self.db_url.clone()),
                (
                    "BENCH_PIPELINE_DB_CONNECTIONS",
                    self.concurrency.to_string(),
                ),
                // What AsyncTasQ's worker reads when it re-enqueues a failed task (the task's
                // own retry_delay is not what it uses): a fixed delay, as Celery's countdown.
                (
                    "ASYNCTASQ_TASK_DEFAULTS_RETRY_STRATEGY",
                    "fixed".to_string(),
                ),
                (
                    "ASYNCTASQ_TASK_DEFAULTS_RETRY_DELAY",
                    RETRY_DELAY_S.to_string(),
                ),
            ]
            .map(|(k, v)| (k.to_string(), v)),
        );
        env
    }

    fn produced(&self) -> Option<u64> {
        Some(self.plan.orders)
    }

    fn record(&self, configuration: &mut Configuration) {
        let retry = if self.system == System::CELERY {
            format!(
                "autoretry_for=(ChargeDeclined,), max_retries={}, default_retry_delay={RETRY_DELAY_S}, retry_backoff=False, retry_jitter=False",
                MAX_ATTEMPTS - 1
            )
        } else {
            format!(
                "max_attempts={MAX_ATTEMPTS} on the task; ASYNCTASQ_TASK_DEFAULTS_RETRY_STRATEGY=fixed, ASYNCTASQ_TASK_DEFAULTS_RETRY_DELAY={RETRY_DELAY_S}"
            )
        };
        let hand_off = if self.system == System::CELERY {
            "chain(validate.s(...), charge.s(), email.s(), inventory.s())"
        } else {
            "each step dispatches the next"
        };
        for (key, value) in [
            ("pipeline.orders", self.plan.orders.to_string()),
            ("pipeline.seed", self.plan.seed.to_string()),
            (
                "pipeline.charge_failure",
                format!("{} basis points per attempt", self.plan.fail_bp),
            ),
            ("pipeline.charge_retry", retry),
            ("pipeline.hand_off", hand_off.to_string()),
            (
                "pipeline.predicted_retries",
                self.plan.retries().to_string(),
            ),
            (
                "pipeline.predicted_failed_orders",
                format!("{:?}", self.plan.failed),
            ),
            (
                "pipeline.inventory",
                format!(
                    "UPDATE inventory SET applied = applied + 1 (psycopg 3, autocommit) on a database of its own, PostgreSQL {}",
                    self.db_source
                ),
            ),
            ("pipeline.inventory_database", self.db_name.clone()),
        ] {
            configuration.settings.insert(key.into(), value);
        }
    }

    fn finish(&self, run: &Finished, metrics: &mut Metrics) -> Vec<String> {
        let plan = &self.plan;
        let analysis = Analysis::of(plan, &run.tally.records);
        let mut errors = analysis.departures(plan);
        if run.tally.foreign > 0 {
            errors.push(format!(
                "{} records the seed does not foresee (a charge attempt beyond the plan, a step of a failed order) or of another run",
                run.tally.foreign
            ));
        }
        let measures = &mut metrics.measures;
        measures.insert(
            "order_latency_p50_ms".into(),
            quantile_ms(&analysis.order_ns, 0.50),
        );
        measures.insert(
            "order_latency_p99_ms".into(),
            quantile_ms(&analysis.order_ns, 0.99),
        );
        for (step, values) in STEPS.iter().zip(&analysis.step_ns) {
            for (name, q) in [("p50", 0.50), ("p99", 0.99)] {
                measures.insert(format!("{step}_latency_{name}_ms"), quantile_ms(values, q));
            }
        }
        measures.insert(
            "charge_retry_wait_p50_ms".into(),
            quantile_ms(&analysis.retry_wait_ns, 0.50),
        );
        measures.insert("charge_retries".into(), analysis.retries as f64);
        measures.insert("charge_retries_predicted".into(), plan.retries() as f64);
        measures.insert(
            "orders_failed_permanently".into(),
            analysis.failed_orders.len() as f64,
        );
        measures.insert("orders_failed_predicted".into(), plan.failed.len() as f64);
        // The run's headline latency is the orders' (the engine's is over every step record),
        // and its enqueue rate counts orders, the tasks the producer sent.
        if !analysis.order_ns.is_empty() {
            metrics.latency_mean_ms = analysis.order_ns.iter().map(|&ns| ns as f64).sum::<f64>()
                / analysis.order_ns.len() as f64
                / 1e6;
            metrics.latency_p50_ms = quantile_ms(&analysis.order_ns, 0.50);
            metrics.latency_p95_ms = quantile_ms(&analysis.order_ns, 0.95);
            metrics.latency_p99_ms = quantile_ms(&analysis.order_ns, 0.99);
            metrics.latency_max_ms = quantile_ms(&analysis.order_ns, 1.0);
        }
        if metrics.enqueue_time_seconds > 0.0 {
            metrics.enqueue_rate_per_sec = plan.orders as f64 / metrics.enqueue_time_seconds;
        }
        errors.extend(self.http.check(metrics));
        match check_inventory(&self.db_url, plan) {
            Ok(check) => errors.extend(check.problems),
            Err(e) => errors.push(format!("{e:#}")),
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: u64, intended_ms: u64, start_ms: u64, end_ms: u64) -> TaskRecord {
        let ms = 1_000_000;
        TaskRecord {
            seq,
            intended_ns: intended_ms * ms,
            start_ns: start_ms * ms,
            end_ns: end_ms * ms,
            pid: 1,
            ok: true,
        }
    }

    #[test]
    fn every_sequence_number_has_one_slot_and_every_slot_one_number() {
        let plan = Plan::of(400);
        assert_eq!(
            plan.failed,
            vec![50],
            "the ci size holds order 50's permanent failure"
        );
        assert!(plan.retries() > 0);
        let mut seen = std::collections::BTreeSet::new();
        for seq in 0..plan.records() {
            let slot = plan.slot(seq).expect("in range");
            assert!(seen.insert(slot), "{slot:?} twice");
        }
        assert_eq!(plan.slot(plan.records()), None);
        let steps = |f: fn(&Step) -> bool| seen.iter().filter(|(_, s)| f(s)).count() as u64;
        assert_eq!(steps(|s| *s == Step::Validate), 400);
        assert_eq!(steps(|s| matches!(s, Step::Charge(_))), plan.total_attempts);
        assert_eq!(steps(|s| *s == Step::Failed), 1);
        assert_eq!(steps(|s| *s == Step::Email), 399);
        assert_eq!(steps(|s| *s == Step::Inventory), 399);
        // A failed order has all its attempts and no email.
        assert!(seen.contains(&(50, Step::Charge(MAX_ATTEMPTS - 1))));
        assert!(!seen.contains(&(50, Step::Email)));
    }

    #[test]
    fn a_plan_is_found_again_from_its_record_count_only() {
        let plan = Plan::of(300);
        assert_eq!(Plan::for_records(plan.records()).unwrap(), plan);
        assert!(Plan::for_records(plan.records() + 1).is_err());
    }

    #[test]
    fn the_first_orders_plan_does_not_depend_on_the_run_size() {
        let small = Plan::of(300);
        let large = Plan::of(3000);
        assert_eq!(small.attempts[..], large.attempts[..300]);
        // About 5% of orders retried at least once.
        let retried = large.attempts.iter().filter(|&&a| a > 1).count();
        assert!((100..200).contains(&retried), "{retried} of 3000");
    }

    /// A two-order plan run by hand: one order retried once, then its analysis.
    #[test]
    fn analysis_measures_orders_steps_and_retries_from_the_records() {
        // Find two orders: the first needing a retry, the second none.
        let plan = Plan::of(200);
        let retried = (0..200).find(|&o| plan.attempts[o as usize] == 2).unwrap();
        let seq = |order: u64, step: Step| {
            (0..plan.records())
                .find(|&s| plan.slot(s) == Some((order, step)))
                .unwrap()
        };
        let records = vec![
            record(seq(retried, Step::Validate), 0, 1, 2),
            record(seq(retried, Step::Charge(0)), 2, 3, 4),
            record(seq(retried, Step::Charge(1)), 2, 1004, 1005),
            record(seq(retried, Step::Email), 1005, 1006, 1016),
            record(seq(retried, Step::Inventory), 1016, 1017, 1020),
        ];
        let a = Analysis::of(&plan, &records);
        assert_eq!(a.order_ns, vec![1_020_000_000]);
        assert_eq!(a.retries, 1);
        assert_eq!(a.retry_wait_ns, vec![1_000_000_000]);
        assert_eq!(a.step_ns[0], vec![2_000_000]);
        assert_eq!(
            a.step_ns[1],
            vec![1_003_000_000],
            "charge ends with its last attempt"
        );
        assert_eq!(a.step_ns[2], vec![11_000_000]);
        assert_eq!(a.step_ns[3], vec![4_000_000]);
        // Against the whole plan: the other orders' retries are missing, order 50's failure too.
        let departures = a.departures(&plan).join("\n");
        assert!(departures.contains("charge retries"), "{departures}");
        assert!(departures.contains("failing permanently"), "{departures}");
        // A retry sooner than the delay means the delay did not apply.
        let early = vec![
            record(seq(retried, Step::Charge(0)), 2, 3, 4),
            record(seq(retried, Step::Charge(1)), 2, 10, 11),
        ];
        let departures = Analysis::of(&plan, &early).departures(&plan).join("\n");
        assert!(
            departures.contains("sooner than the 1 s retry delay"),
            "{departures}"
        );
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        let values: Vec<u64> = (1..=100).map(|ms| ms * 1_000_000).collect();
        assert_eq!(quantile_ms(&values, 0.5), 50.0);
        assert_eq!(quantile_ms(&values, 0.99), 99.0);
        assert_eq!(quantile_ms(&values, 1.0), 100.0);
        assert!(quantile_ms(&[], 0.5).is_nan());
    }
}
