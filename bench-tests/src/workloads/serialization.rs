//! Scenario 5, serialization: payloads of each kind (small, medium, complex, 1 MB binary,
//! a model with 20 related rows in each of SQLAlchemy 2 async, Django's async ORM and
//! Tortoise) through each system's serializer.
//!
//! Two shapes of run:
//! - drains (the engine): N tasks carrying one payload kind through one serializer:
//!   AsyncTasQ's own (msgspec msgpack, with its ORM hook sending only the PK) and Celery's
//!   json, pickle and msgpack. Each task checks it received exactly what was sent. Bytes
//!   per task are read back from the broker; the producer reads the same message back
//!   and says what its bytes are spent on (payload, class paths, file paths). ORM cases
//!   (AsyncTasQ: the model through its ORM hook for that ORM; Celery: the id re-fetched, or
//!   the model as a dict by value) run on a PostgreSQL database of their own; the producer changes the row after its
//!   window, before any worker starts, so a task that re-fetched sees the new value.
//! - micro-benchmarks (`micro=on`, [`Workload::run`] overridden): encode and decode per
//!   call in a process of their own (tasq_fixtures.serialization_micro), with the custom
//!   TypeHook registration time and msgpack against kombu's JSON.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::{Case, Finished, Measure, RunPart, Workload};
use crate::analysis::stats::Better;
use crate::harness::Harness;
use crate::measure::procs::ManagedChild;
use crate::profile::Profile;
use crate::provision::brokers::Driver;
use crate::report;
use crate::result::{Configuration, Metrics};
use crate::run::space::RunSpace;
use crate::run::{RunOutput, RunRequest};
use crate::systems::{celery, System, Variant};

pub struct Serialization;

/// The profile's `[serialization]` section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Sizes {
    /// Tasks per drain of every payload kind but binary.
    pub task_count: u64,
    /// Tasks per drain of the 1 MiB binary payload (each is a megabyte in the broker).
    pub binary_task_count: u64,
    /// Both systems' concurrency (AsyncTasQ asyncio, Celery threads).
    pub concurrency: u32,
    /// Micro-benchmark: timed calls per payload and direction (at most).
    pub micro_rounds: u64,
    /// Micro-benchmark: untimed calls before each series.
    pub micro_warmup: u64,
    /// Micro-benchmark: a series stops after this long even before `micro_rounds`.
    pub micro_max_seconds: f64,
}

/// Payload kinds of the drains, as the fixtures name them.
pub const PAYLOADS: [&str; 4] = ["small", "medium", "complex", "binary"];
/// Celery's serializers.
pub const CELERY_SERIALIZERS: [&str; 3] = ["json", "pickle", "msgpack"];
/// Combinations that are not run, and why (a finding, stated in the report).
pub const UNSUPPORTED: [(&str, &str, &str); 1] = [(
    "msgpack",
    "complex",
    "kombu's msgpack (msgpack-python without ext hooks) cannot encode datetime, Decimal, UUID or set",
)];
/// How the JSON runs carry what JSON has no type for (stated in the report and results).
pub const JSON_CONVERSION: &str =
    "Celery json, complex payload: the set is sent as a sorted list (kombu's json has no set type; datetime, Decimal, UUID and bytes it encodes itself)";

const MICRO_KINDS: [&str; 5] = ["small", "medium", "complex", "binary", "orm"];

macro_rules! micro_measures {
    ($($kind:literal),*) => {
        [$(
            Measure { name: concat!("encode_", $kind, "_p50_us"), better: Better::Lower, about: concat!("micro-benchmark: median time to encode the ", $kind, " payload's task arguments, µs per call") },
            Measure { name: concat!("encode_", $kind, "_p99_us"), better: Better::Lower, about: concat!("micro-benchmark: p99 time to encode the ", $kind, " payload's task arguments, µs per call") },
            Measure { name: concat!("decode_", $kind, "_p50_us"), better: Better::Lower, about: concat!("micro-benchmark: median time to decode the ", $kind, " payload's task arguments, µs per call") },
            Measure { name: concat!("decode_", $kind, "_p99_us"), better: Better::Lower, about: concat!("micro-benchmark: p99 time to decode the ", $kind, " payload's task arguments, µs per call") },
        )*]
    };
}

const DRAIN_MEASURES: [Measure; 7] = [
    Measure {
        name: "bytes_per_task",
        better: Better::Lower,
        about: "one queued message's size, read back from the broker before the workers start",
    },
    Measure {
        name: "payload_bytes",
        better: Better::Lower,
        about: "the payload argument alone, taken from the message read back from the broker and re-encoded alone in its format",
    },
    Measure {
        name: "class_path_bytes",
        better: Better::Lower,
        about: "AsyncTasQ: bytes of dotted class/module paths in the message (task class, function, ORM model)",
    },
    Measure {
        name: "file_path_bytes",
        better: Better::Lower,
        about: "AsyncTasQ: bytes of file paths in the message (they depend on where the code is installed)",
    },
    Measure {
        name: "orm_refetch_p50_ms",
        better: Better::Lower,
        about: "ORM by PK or id: median time of the worker's re-fetch of the row, ms (timed around the fetch)",
    },
    Measure {
        name: "orm_refetch_p99_ms",
        better: Better::Lower,
        about: "ORM by PK or id: p99 time of the worker's re-fetch of the row, ms",
    },
    Measure {
        name: "orm_fresh_fraction",
        better: Better::Higher,
        about: "ORM: share of tasks that saw the value the row was changed to after dispatch",
    },
];

const OTHER_MICRO: [Measure; 3] = [
    Measure {
        name: "msgpack_vs_json_ratio",
        better: Better::Higher,
        about: "micro-benchmark: kombu json's encode+decode median of the medium payload over this msgpack serializer's (above 1: msgpack faster)",
    },
    Measure {
        name: "hook_registration_us",
        better: Better::Lower,
        about: "AsyncTasQ: median time to register a custom TypeHook on its serializer (register_hook), µs",
    },
    Measure {
        name: "hook_registration_p99_us",
        better: Better::Lower,
        about: "AsyncTasQ: p99 time to register a custom TypeHook, µs",
    },
];

fn all_measures() -> &'static [Measure] {
    static ALL: std::sync::OnceLock<Vec<Measure>> = std::sync::OnceLock::new();
    ALL.get_or_init(|| {
        let micro = micro_measures!("small", "medium", "complex", "binary", "orm");
        DRAIN_MEASURES
            .into_iter()
            .chain(micro)
            .chain(OTHER_MICRO)
            .collect()
    })
}

fn is_micro(case: &Case) -> bool {
    case.variant.option("micro") == Some("on")
}

/// The ORMs, each with its payloads: AsyncTasQ's model through its hook (PK only), Celery's
/// id (re-fetched by the task) and model as a dict (by value). The SQLAlchemy names are the
/// first ones (`orm`), kept for the criteria and the committed runs.
/// (ORM, AsyncTasQ payload, Celery id payload, Celery by-value payload).
pub const ORMS: [(&str, &str, &str, &str); 3] = [
    ("sqlalchemy", "orm", "orm_id", "orm_dict"),
    ("django", "django", "django_id", "django_dict"),
    ("tortoise", "tortoise", "tortoise_id", "tortoise_dict"),
];
/// Celery serializers the Django and Tortoise payloads run with: the id is the same int as
/// SQLAlchemy's and the dict holds the same columns and values, so the other serializers'
/// bytes are those of the SQLAlchemy cases (a smaller matrix keeps the local run short).
pub const OTHER_ORM_SERIALIZERS: [&str; 1] = ["json"];

/// The ORM whose model `payload` carries, if any.
fn orm_of(payload: &str) -> Option<&'static str> {
    ORMS.iter()
        .find(|(_, pk, id, by_value)| [*pk, *id, *by_value].contains(&payload))
        .map(|(orm, ..)| *orm)
}

fn is_orm(payload: &str) -> bool {
    orm_of(payload).is_some()
}

/// The by-value payloads (the model as a dict): nothing to re-fetch.
fn is_by_value(payload: &str) -> bool {
    ORMS.iter().any(|(.., by_value)| *by_value == payload)
}

/// How each ORM is set up on both sides (stated in the result).
fn orm_description(orm: &str, pool: u32) -> String {
    match orm {
        "django" => format!("Django 6.1 models DjUser with {ORM_RELATED_ROWS} related DjOrder rows on PostgreSQL (a database of the run's own), settings configured in-process, persistent connections (CONN_MAX_AGE=None). AsyncTasQ: its Django hook's objects.aget(pk=), which Django runs in asgiref's thread-sensitive executor (one thread for all the worker's fetches); Celery: objects.get(pk=) on psycopg 3, a connection per thread"),
        "tortoise" => format!("Tortoise ORM 1.1 models TtUser with {ORM_RELATED_ROWS} related TtOrder rows on PostgreSQL (a database of the run's own), asyncpg pool maxsize {pool}. AsyncTasQ: Tortoise.init in the worker's loop before it starts, so its Tortoise hook fetches (Model.get(pk=)) while it deserializes; Celery: one event loop thread per worker process with Tortoise initialized on it, each task submits get_or_none(id=) and waits (timed including that hop)"),
        _ => format!("SQLAlchemy 2 User with {ORM_RELATED_ROWS} related Order rows on PostgreSQL (a database of the run's own); pooled engines of pool_size {pool} on both sides (AsyncTasQ: async_sessionmaker on asyncpg, expire_on_commit=False; Celery: Session on psycopg 3)"),
    }
}

/// The fixture task that carries `payload` on `system`.
fn task_of(system: System, payload: &str) -> &'static str {
    if !is_orm(payload) {
        "serialization:carry"
    } else if system == System::ASYNCTASQ {
        "serialization:carry_orm"
    } else if is_by_value(payload) {
        "serialization:carry_orm_dict"
    } else {
        "serialization:carry_orm_id"
    }
}

impl Serialization {
    /// Every drain case at `sizes` on `driver`.
    fn drain_cases(&self, profile: &Profile, driver: Driver) -> Vec<Case> {
        let s = &profile.serialization;
        let count = |payload: &str| {
            if payload == "binary" {
                s.binary_task_count
            } else {
                s.task_count
            }
        };
        let mut variants: Vec<(Variant, &str)> = Vec::new();
        for payload in PAYLOADS.into_iter().chain(ORMS.map(|o| o.1)) {
            variants.push((
                Variant::new(System::ASYNCTASQ, "asyncio", s.concurrency).with("payload", payload),
                payload,
            ));
        }
        for serializer in CELERY_SERIALIZERS {
            let others = ORMS[1..]
                .iter()
                .filter(|_| OTHER_ORM_SERIALIZERS.contains(&serializer))
                .flat_map(|o| [o.2, o.3]);
            for payload in PAYLOADS
                .into_iter()
                .chain(["orm_id", "orm_dict"])
                .chain(others)
            {
                if UNSUPPORTED
                    .iter()
                    .any(|(ser, kind, _)| *ser == serializer && *kind == payload)
                {
                    continue;
                }
                // Acking late: AsyncTasQ's at-least-once, so the two pair in comparisons.
                let variant = celery::acking_late("threads", s.concurrency)
                    .with("payload", payload)
                    .with("serializer", serializer);
                variants.push((variant, payload));
            }
        }
        variants
            .into_iter()
            .map(|(variant, payload)| {
                let system = variant.system;
                Case::new(
                    self.name(),
                    driver,
                    variant,
                    task_of(system, payload),
                    count(payload),
                    profile,
                )
            })
            .collect()
    }

    fn micro_cases(&self, profile: &Profile, driver: Driver) -> Vec<Case> {
        let mut variants = vec![Variant::new(System::ASYNCTASQ, "asyncio", 1)
            .with("micro", "on")
            .with("serializer", "msgspec")];
        for serializer in CELERY_SERIALIZERS {
            variants.push(
                celery::acking_late("threads", 1)
                    .with("micro", "on")
                    .with("serializer", serializer),
            );
        }
        variants
            .into_iter()
            .map(|v| {
                Case::new(
                    self.name(),
                    driver,
                    v,
                    "serialization:micro",
                    profile.serialization.micro_rounds,
                    profile,
                )
            })
            .collect()
    }
}

thread_local! {
    /// The ORM database of the run being started on this thread (see [`Workload::run`]):
    /// created from the harness's PostgreSQL broker, which `start_run` cannot reach.
    static ORM_URL: RefCell<Option<String>> = const { RefCell::new(None) };
}

impl Workload for Serialization {
    /// A payload (and the micro-benchmark against the drains) is the load, not the system:
    /// small is never compared with complex. One ORM's model is one load however it travels
    /// (AsyncTasQ's `orm` by its hook, Celery's `orm_id` and `orm_dict`), so those pair: the
    /// reduction criteria compare them. Serializers are what comparisons are about.
    fn comparable(
        &self,
        a: &BTreeMap<&str, &str>,
        b: &BTreeMap<&str, &str>,
        _same_system: bool,
    ) -> bool {
        let family = |o: &BTreeMap<&str, &str>| {
            o.get("payload")
                .map(|p| p.split('_').next().unwrap_or(p).to_string())
        };
        family(a) == family(b) && a.get("micro") == b.get("micro")
    }

    fn name(&self) -> &'static str {
        "serialization"
    }

    fn cases(&self, profile: &Profile, driver: Driver, _cpus: u32) -> Vec<Case> {
        let mut cases = self.drain_cases(profile, driver);
        cases.extend(self.micro_cases(profile, driver));
        cases
    }

    /// Bytes per task: the figure this scenario is about (the same every run of a case, so
    /// a case stops at the minimum of repetitions; micro runs have none and run to the
    /// maximum, a few seconds each).
    fn primary_metric(&self) -> Option<&'static str> {
        Some("bytes_per_task")
    }

    fn measures(&self) -> &'static [Measure] {
        all_measures()
    }

    fn validate_profile(&self, profile: &Profile, file: &str) -> Result<()> {
        let s = &profile.serialization;
        let check = |ok: bool, key: &str, range: &str, value: String| -> Result<()> {
            if ok {
                Ok(())
            } else {
                bail!("{file}: [serialization] {key} = {value}: must be {range}")
            }
        };
        check(
            (1..=1_000_000).contains(&s.task_count),
            "task_count",
            "1 to 1,000,000",
            s.task_count.to_string(),
        )?;
        check(
            (1..=2_000).contains(&s.binary_task_count),
            "binary_task_count",
            "1 to 2,000 (each task is 1 MiB in the broker)",
            s.binary_task_count.to_string(),
        )?;
        check(
            (1..=1_000).contains(&s.concurrency),
            "concurrency",
            "1 to 1,000",
            s.concurrency.to_string(),
        )?;
        check(
            (100..=10_000_000).contains(&s.micro_rounds),
            "micro_rounds",
            "100 to 10,000,000",
            s.micro_rounds.to_string(),
        )?;
        check(
            s.micro_warmup <= 1_000_000,
            "micro_warmup",
            "0 to 1,000,000",
            s.micro_warmup.to_string(),
        )?;
        check(
            s.micro_max_seconds > 0.0 && s.micro_max_seconds <= 60.0,
            "micro_max_seconds",
            "above 0 and at most 60",
            s.micro_max_seconds.to_string(),
        )
    }

    fn start_run(&self, case: &Case, dir: &Path) -> Result<Box<dyn RunPart>> {
        let payload = case
            .variant
            .option("payload")
            .context("a serialization drain case names its payload")?
            .to_string();
        let orm_url = ORM_URL.with(|u| u.borrow().clone());
        if is_orm(&payload) && orm_url.is_none() {
            bail!(
                "{}: an ORM case needs its database (run it through Workload::run)",
                case.label()
            );
        }
        let observations = dir.join("observations");
        std::fs::create_dir_all(&observations)?;
        Ok(Box::new(DrainPart {
            payload,
            serializer: case.variant.option("serializer").map(str::to_string),
            concurrency: case.variant.concurrency,
            expect: case.variant.option("expect").map(str::to_string),
            orm_url,
            observations,
            report: dir.join("payload-report.json"),
            paths: RefCell::new(String::new()),
        }))
    }

    fn run(
        &self,
        h: &Harness,
        req: &RunRequest,
        on_progress: &mut dyn FnMut(u64),
    ) -> Result<RunOutput> {
        if is_micro(req.case) {
            return run_micro(h, req);
        }
        let payload = req.case.variant.option("payload").unwrap_or("");
        if !is_orm(payload) {
            return crate::run::run_once(h, req, on_progress);
        }
        // The run's own database, dropped (WITH FORCE) when `database` goes out of scope,
        // on success and on failure alike.
        let database = h
            .broker(Driver::Postgres)
            .context("the ORM payloads need PostgreSQL")?
            .namespace(&format!("ser{:08x}", rand::random::<u32>()))?;
        ORM_URL.with(|u| *u.borrow_mut() = Some(database.connection_url()));
        let out = crate::run::run_once(h, req, on_progress);
        ORM_URL.with(|u| *u.borrow_mut() = None);
        drop(database);
        out
    }

    fn report_section(&self, place: &report::Place) -> String {
        section(place)
    }

    fn charts(&self, place: &report::ChartPlace) -> Result<Vec<(String, String)>> {
        charts(place)
    }
}

/// What a drain run of one payload adds: its environment, the producer's payload and
/// read-back report, and the ORM checks.
struct DrainPart {
    payload: String,
    serializer: Option<String>,
    concurrency: u32,
    /// The variant's `expect` option, if any (see [`DrainPart::expectation`]).
    expect: Option<String>,
    orm_url: Option<String>,
    observations: PathBuf,
    report: PathBuf,
    /// The paths AsyncTasQ's message stores, read back by the producer (for the result).
    paths: RefCell<String>,
}

impl DrainPart {
    /// What the tasks of the by-value case expect: they record what they saw (the old
    /// value, as a finding); the re-fetching cases must see the new value. A variant option
    /// `expect=new` holds the by-value case to the fresh expectation (a test of the check).
    fn expectation(&self) -> &str {
        match self.expect.as_deref() {
            Some(expect) => expect,
            None if is_by_value(&self.payload) => "any",
            None => "new",
        }
    }
}

/// The producer's read-back of the first queued message.
#[derive(Debug, Deserialize)]
struct PayloadReport {
    message_bytes: Option<u64>,
    payload_bytes: Option<u64>,
    class_path_bytes: Option<u64>,
    file_path_bytes: Option<u64>,
    #[serde(default)]
    paths: std::collections::BTreeMap<String, Vec<String>>,
    error: Option<String>,
}

impl RunPart for DrainPart {
    fn task_env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("BENCH_TASK_MODULES".into(), "serialization".into()),
            ("BENCH_SER_PAYLOAD".into(), self.payload.clone()),
            (
                "BENCH_SER_OBS_DIR".into(),
                self.observations.display().to_string(),
            ),
            ("BENCH_ORM_EXPECT".into(), self.expectation().to_string()),
            ("BENCH_ORM_POOL".into(), self.concurrency.to_string()),
        ];
        if let Some(serializer) = &self.serializer {
            env.push(("BENCH_CELERY_SERIALIZER".into(), serializer.clone()));
            if serializer == "pickle" {
                // Celery's worker refuses pickle as root unless told otherwise; the harness
                // runs as root in CI (stated in the result).
                env.push(("C_FORCE_ROOT".into(), "1".into()));
            }
        }
        if let Some(url) = &self.orm_url {
            env.push(("BENCH_ORM_URL".into(), url.clone()));
        }
        if let Some(orm) = orm_of(&self.payload) {
            env.push(("BENCH_ORM_KIND".into(), orm.into()));
        }
        env
    }

    fn producer_args(&self) -> Vec<String> {
        vec![
            "--payload".into(),
            self.payload.clone(),
            "--payload-report".into(),
            self.report.display().to_string(),
        ]
    }

    fn record(&self, configuration: &mut Configuration) {
        let s = &mut configuration.settings;
        s.insert("payload".into(), self.payload.clone());
        let paths = self.paths.borrow();
        if !paths.is_empty() {
            s.insert("message_paths".into(), paths.clone());
        }
        s.insert(
            "serializer".into(),
            self.serializer
                .clone()
                .unwrap_or_else(|| "asynctasq msgspec (msgpack with its type hooks)".into()),
        );
        if self.serializer.as_deref() == Some("pickle") {
            s.insert(
                "C_FORCE_ROOT".into(),
                "1 (Celery refuses to accept pickle as root without it)".into(),
            );
        }
        if self.payload == "complex" && self.serializer.as_deref() == Some("json") {
            s.insert("payload_conversion".into(), JSON_CONVERSION.into());
        }
        if let Some(orm) = orm_of(&self.payload) {
            s.insert("orm".into(), orm_description(orm, self.concurrency));
            s.insert(
                "orm_fresh_data".into(),
                "the row is changed after dispatch, before the workers start".into(),
            );
            s.insert("orm_expect".into(), self.expectation().into());
        }
    }

    fn finish(&self, run: &Finished, metrics: &mut Metrics) -> Vec<String> {
        let mut errors = Vec::new();
        if let Some(bytes) = metrics.message_bytes {
            metrics
                .measures
                .insert("bytes_per_task".into(), bytes as f64);
        }
        match read_report(&self.report) {
            Ok(report) => {
                if let Some(e) = &report.error {
                    errors.push(format!("the producer could not read its message back: {e}"));
                }
                // The same message, read back by the producer and by the harness.
                if report.message_bytes.is_some() && report.message_bytes != metrics.message_bytes {
                    errors.push(format!(
                        "the producer read back a message of {:?} bytes, the harness {:?}",
                        report.message_bytes, metrics.message_bytes
                    ));
                }
                for (name, value) in [
                    ("payload_bytes", report.payload_bytes),
                    ("class_path_bytes", report.class_path_bytes),
                    ("file_path_bytes", report.file_path_bytes),
                ] {
                    if let Some(v) = value {
                        metrics.measures.insert(name.into(), v as f64);
                    }
                }
                if !report.paths.is_empty() {
                    *self.paths.borrow_mut() =
                        serde_json::to_string(&report.paths).unwrap_or_default();
                }
            }
            Err(e) => errors.push(format!("no payload report from the producer: {e:#}")),
        }
        if is_orm(&self.payload) {
            errors.extend(self.orm_checks(run.task_count, metrics));
        }
        errors
    }
}

/// The related rows of the ORM `User` (as the fixture makes it).
pub const ORM_RELATED_ROWS: u32 = 20;

fn read_report(path: &Path) -> Result<PayloadReport> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// One task's observation: (seq, what it saw, fetch µs).
fn observations(dir: &Path) -> Result<Vec<(u64, String, Option<f64>)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let text = std::fs::read_to_string(entry?.path())?;
        for line in text.lines() {
            let mut parts = line.split_whitespace();
            let (Some(seq), Some(saw), Some(fetch)) = (parts.next(), parts.next(), parts.next())
            else {
                bail!("unreadable observation line {line:?}");
            };
            out.push((
                seq.parse()?,
                saw.to_string(),
                (fetch != "-").then(|| fetch.parse()).transpose()?,
            ));
        }
    }
    Ok(out)
}

impl DrainPart {
    /// Fetch latency and what the tasks saw; errors when a re-fetching case saw stale data
    /// or a task left no observation.
    fn orm_checks(&self, task_count: u64, metrics: &mut Metrics) -> Vec<String> {
        let seen = match observations(&self.observations) {
            Ok(seen) => seen,
            Err(e) => return vec![format!("reading the tasks' ORM observations: {e:#}")],
        };
        let mut errors = Vec::new();
        let mut seqs: Vec<u64> = seen.iter().map(|o| o.0).collect();
        seqs.sort_unstable();
        seqs.dedup();
        if seqs.len() as u64 != task_count {
            errors.push(format!(
                "{} of {task_count} ORM tasks recorded what they saw",
                seqs.len()
            ));
        }
        let fresh = seen.iter().filter(|o| o.1 == "new").count();
        if !seen.is_empty() {
            metrics.measures.insert(
                "orm_fresh_fraction".into(),
                fresh as f64 / seen.len() as f64,
            );
        }
        if self.expectation() == "new" && fresh != seen.len() {
            errors.push(format!(
                "fresh-data check: {} of {} tasks saw the row as it was before dispatch, not its new value",
                seen.len() - fresh,
                seen.len()
            ));
        }
        let mut fetch_us: Vec<f64> = seen.iter().filter_map(|o| o.2).collect();
        // The PK and id cases re-fetch; the by-value one has nothing to fetch.
        if !is_by_value(&self.payload) {
            if fetch_us.len() != seen.len() {
                errors.push(format!(
                    "{} of {} re-fetching tasks did not time their fetch",
                    seen.len() - fetch_us.len(),
                    seen.len()
                ));
            }
            fetch_us.sort_by(f64::total_cmp);
            if !fetch_us.is_empty() {
                let pick = |q: f64| {
                    fetch_us[((q * fetch_us.len() as f64) as usize).min(fetch_us.len() - 1)]
                        / 1000.0
                };
                metrics
                    .measures
                    .insert("orm_refetch_p50_ms".into(), pick(0.5));
                metrics
                    .measures
                    .insert("orm_refetch_p99_ms".into(), pick(0.99));
            }
        }
        errors
    }
}

/// The micro-benchmark's output file.
#[derive(Debug, Deserialize)]
struct MicroOut {
    measures: std::collections::BTreeMap<String, f64>,
    #[serde(default)]
    skipped: std::collections::BTreeMap<String, String>,
    settings: std::collections::BTreeMap<String, String>,
}

/// One micro-benchmark run: its own process (no worker, no broker traffic), bounded by the
/// run's timeout; a result with the measures and no task metrics.
fn run_micro(h: &Harness, req: &RunRequest) -> Result<RunOutput> {
    let case = req.case;
    let sizes_rounds = case.task_count;
    let space = RunSpace::open(h, case.driver)?;
    let out_file = space.dir().join("micro.json");
    let socket = space.dir().join("unused.sock");
    let env = space.env(h, &socket, &req.run_id, case.celery_prefetch_multiplier);
    let serializer = case.variant.option("serializer").unwrap_or("json");
    let profile = crate::profile::Profile::load(&crate::project_root(), req.profile_name).ok();
    let (warmup, max_seconds) = profile.as_ref().map_or((500, 1.0), |p| {
        (
            p.serialization.micro_warmup,
            p.serialization.micro_max_seconds,
        )
    });
    let mut command = env.command(h.python.python.clone());
    command.args([
        "-m",
        "tasq_fixtures.serialization_micro",
        "--system",
        case.variant.system.name(),
        "--serializer",
        serializer,
        "--rounds",
        &sizes_rounds.to_string(),
        "--warmup",
        &warmup.to_string(),
        "--max-seconds",
        &max_seconds.to_string(),
        "--out",
        &out_file.display().to_string(),
    ]);
    let started = Instant::now();
    let mut child = ManagedChild::spawn("micro", &mut command, space.dir())?;
    let status = child.wait_exit(req.timeout);
    match status {
        Some(s) if s.success() => {}
        Some(s) => bail!(
            "run {}: the micro-benchmark failed ({s}). Its output ends with:\n{}",
            req.run_id,
            child.log_tail(25)
        ),
        None => {
            child.stop(Duration::from_secs(2));
            bail!(
                "run {}: the micro-benchmark did not finish within {:?}. Its output ends with:\n{}",
                req.run_id,
                req.timeout,
                child.log_tail(25)
            )
        }
    }
    let text = std::fs::read_to_string(&out_file)
        .with_context(|| format!("run {}: reading {}", req.run_id, out_file.display()))?;
    let micro: MicroOut = serde_json::from_str(&text)
        .with_context(|| format!("run {}: parsing {}", req.run_id, out_file.display()))?;
    let mut metrics = Metrics::not_measured();
    metrics.measures = micro.measures;
    metrics.processing_time_seconds = started.elapsed().as_secs_f64();
    let mut settings = micro.settings;
    settings.insert(
        "serializer".into(),
        if case.variant.system == System::ASYNCTASQ {
            "asynctasq msgspec (msgpack with its type hooks)".into()
        } else {
            format!("kombu {serializer}")
        },
    );
    for (kind, why) in &micro.skipped {
        settings.insert(format!("skipped_{kind}"), why.clone());
    }
    if serializer == "json" {
        settings.insert("payload_conversion".into(), JSON_CONVERSION.into());
    }
    settings.insert(
        "what".into(),
        "encode/decode per call of the task arguments [run_id, seq, intended_ns, payload] in the system's message format, in a process of its own".into(),
    );
    let configuration = Configuration {
        producer_batch: case.producer_batch,
        worker_log_level: None,
        settings,
        broker_source: "none (micro-benchmark)".into(),
        caveats: vec![
            "micro-benchmark: no broker, no worker; per-call times of the serializer only".into(),
        ],
        ..req.configuration()
    };
    let result = req.result(h, configuration, metrics, Vec::new());
    Ok(RunOutput {
        result,
        histograms: crate::measure::metrics::Histograms::from_tally(&Default::default()),
    })
}

// --- report -----------------------------------------------------------------------------

fn median(
    place_stats: &crate::analysis::summary::Summary,
    k: &crate::analysis::summary::GroupKey,
    metric: &str,
) -> Option<f64> {
    report::mean_of(place_stats, k, metric).map(|g| g.median)
}

/// `payload` and `serializer` options of a variant label, e.g. `threads-c10-acks_late-payload_orm_id-serializer_json`.
fn label_option<'a>(variant: &'a str, option: &str) -> Option<&'a str> {
    variant
        .split('-')
        .find_map(|t| t.strip_prefix(&format!("{option}_")))
}

fn serializer_name(system: &str, variant: &str) -> String {
    match label_option(variant, "serializer") {
        Some(s) if system == "celery" => format!("celery {s}"),
        _ => "asynctasq msgspec".into(),
    }
}

fn section(place: &report::Place) -> String {
    let mut md = String::new();
    let drains: Vec<_> = place
        .keys
        .iter()
        .filter(|k| label_option(&k.variant, "micro").is_none())
        .collect();
    let micros: Vec<_> = place
        .keys
        .iter()
        .filter(|k| label_option(&k.variant, "micro").is_some())
        .collect();
    let _ = writeln!(
        md,
        "Bytes are read back from the broker (one queued message) before the workers start; the payload alone is taken from that message. Each task checked it received exactly what was sent.\n"
    );
    let _ = writeln!(md, "| serializer | payload | n | bytes per task | payload bytes | class-path bytes | file-path bytes | tasks/s (95% CI) | re-fetch p50 / p99 ms | saw new value |\n|---|---|---|---|---|---|---|---|---|---|");
    for k in &drains {
        let n = report::mean_of(place.stats, k, "bytes_per_task").map_or(0, |g| g.n);
        let m = |metric| {
            median(place.stats, k, metric).map_or("–".to_string(), |v| report::num(v, 0))
        };
        let refetch = match (
            median(place.stats, k, "orm_refetch_p50_ms"),
            median(place.stats, k, "orm_refetch_p99_ms"),
        ) {
            (Some(a), Some(b)) => format!("{} / {}", report::num(a, 2), report::num(b, 2)),
            _ => "–".into(),
        };
        let fresh = median(place.stats, k, "orm_fresh_fraction")
            .map_or("–".into(), |f| format!("{:.0}%", f * 100.0));
        let _ = writeln!(
            md,
            "| {} | {} | {n} | {} | {} | {} | {} | {} | {refetch} | {fresh} |",
            serializer_name(&k.system, &k.variant),
            label_option(&k.variant, "payload").unwrap_or("?"),
            m("bytes_per_task"),
            m("payload_bytes"),
            m("class_path_bytes"),
            m("file_path_bytes"),
            report::fmt_ci_digits(
                report::mean_of(place.stats, k, "throughput_tasks_per_sec"),
                0
            ),
        );
    }
    for (ser, kind, why) in UNSUPPORTED {
        let _ = writeln!(
            md,
            "\nNot run: celery {ser} with the {kind} payload: {why}."
        );
    }
    let _ = writeln!(md, "\n{JSON_CONVERSION}.");
    // The plan's claim: the ORM payload 90%+ smaller, 52 vs 2,814 bytes.
    let find = |system: &str, payload: &str, serializer: Option<&str>| {
        drains.iter().find(|k| {
            k.system == system
                && label_option(&k.variant, "payload") == Some(payload)
                && serializer.is_none_or(|s| label_option(&k.variant, "serializer") == Some(s))
        })
    };
    let fetch = |k: Option<&crate::analysis::summary::GroupKey>| match k.map(|k| {
        (
            median(place.stats, k, "orm_refetch_p50_ms"),
            median(place.stats, k, "orm_refetch_p99_ms"),
        )
    }) {
        Some((Some(a), Some(b))) => format!("{} / {}", report::num(a, 2), report::num(b, 2)),
        _ => "–".into(),
    };
    let mut rows = String::new();
    for (orm, pk_payload, id_payload, dict_payload) in ORMS {
        let (Some(pk), Some(by_value)) = (
            find("asynctasq", pk_payload, None),
            find("celery", dict_payload, Some("json")),
        ) else {
            continue;
        };
        let m = |k, metric| median(place.stats, k, metric);
        let (Some(a), Some(b), Some(ma), Some(mb)) = (
            m(pk, "payload_bytes"),
            m(by_value, "payload_bytes"),
            m(pk, "bytes_per_task"),
            m(by_value, "bytes_per_task"),
        ) else {
            continue;
        };
        let id = find("celery", id_payload, Some("json"));
        let paths = m(pk, "file_path_bytes").unwrap_or(f64::NAN);
        let classes = m(pk, "class_path_bytes").unwrap_or(f64::NAN);
        let id_bytes = id
            .and_then(|k| m(k, "bytes_per_task"))
            .map_or("–".into(), |v| format!("{v:.0}"));
        let _ = writeln!(
            rows,
            "| {orm} | {a:.0} | {b:.0} | {:.1}% | {ma:.0} / {mb:.0} ({:.1}%) | {classes:.0} / {paths:.0} | {:.0} | {} | {id_bytes} | {} |",
            (1.0 - a / b) * 100.0,
            (1.0 - ma / mb) * 100.0,
            mb - ma,
            fetch(Some(*pk)),
            fetch(id.map(|k| **k)),
        );
    }
    if !rows.is_empty() {
        let _ = writeln!(
            md,
            "
**ORM payload against the plan's claim (\"90%+ smaller, 52 vs 2,814 bytes\")**, per ORM: AsyncTasQ's PK reference (its hook for that ORM) against the model with its {ORM_RELATED_ROWS} related rows by value in Celery json, the payload argument alone and the whole message. Class/file paths: bytes of AsyncTasQ's ORM message spent on dotted class and module paths and on file paths (the task's function file, its task class file in site-packages and the model's file), which grow with the install location's path length. Net cost: the bytes the PK saves per message against one re-fetch on the worker (median / p99, ms), AsyncTasQ's hook against Celery's manual id (its message size alongside). By value, the worker saw the row as it was at dispatch (see \"saw new value\" above).\n"
        );
        let _ = writeln!(md, "| ORM | AsyncTasQ PK payload bytes | Celery json by-value payload bytes | payload smaller by | whole messages (smaller by) | class / file path bytes | bytes saved per message | AsyncTasQ re-fetch p50 / p99 ms | Celery id message bytes | Celery id re-fetch p50 / p99 ms |\n|---|---|---|---|---|---|---|---|---|---|");
        md.push_str(&rows);
        let _ = writeln!(
            md,
            "\nThe Django and Tortoise payloads run with Celery {} only: their id is the same int as SQLAlchemy's and their dict holds the same columns and values, so the other serializers' bytes are the SQLAlchemy rows' above.",
            OTHER_ORM_SERIALIZERS.join(", ")
        );
    }
    if !micros.is_empty() {
        let _ = writeln!(
            md,
            "\nMicro-benchmark (own process, garbage collector enabled, medians of the per-call median, µs; p99 in the raw runs): encode / decode of the task arguments carrying each payload.\n"
        );
        let _ = write!(md, "| serializer | n |");
        for kind in MICRO_KINDS {
            let _ = write!(md, " {kind} |");
        }
        let _ = writeln!(md, " msgpack vs kombu json | hook registration µs |");
        let _ = writeln!(md, "|---|---|{}---|---|", "---|".repeat(MICRO_KINDS.len()));
        for k in &micros {
            let n = report::mean_of(place.stats, k, "encode_small_p50_us").map_or(0, |g| g.n);
            let _ = write!(md, "| {} | {n} |", serializer_name(&k.system, &k.variant));
            for kind in MICRO_KINDS {
                let e = median(place.stats, k, &format!("encode_{kind}_p50_us"));
                let d = median(place.stats, k, &format!("decode_{kind}_p50_us"));
                let f = |v: Option<f64>| v.map_or("–".to_string(), |v| report::num(v, 1));
                let _ = write!(md, " {} / {} |", f(e), f(d));
            }
            let ratio = median(place.stats, k, "msgpack_vs_json_ratio")
                .map_or("–".into(), |r| format!("{r:.2}x"));
            let hook = median(place.stats, k, "hook_registration_us")
                .map_or("–".into(), |v| report::num(v, 1));
            let _ = writeln!(md, " {ratio} | {hook} |");
        }
        let _ = writeln!(
            md,
            "\nAsyncTasQ's `orm` decode is the database re-fetch (in the drains above). Celery's `orm` is the model as a dict."
        );
    }
    md
}

fn charts(place: &report::ChartPlace) -> Result<Vec<(String, String)>> {
    use crate::report::charts::{bars_with_ci, Bar};
    let bar = |k: &crate::analysis::summary::GroupKey, metric: &str, label: String| {
        report::mean_of(place.stats, k, metric).map(|g| Bar {
            label,
            key: serializer_name(&k.system, &k.variant),
            value: g.median,
            ci_low: g.ci95_low,
            ci_high: g.ci95_high,
        })
    };
    let mut bytes = Vec::new();
    let mut times = Vec::new();
    for k in place.keys {
        let short = serializer_name(&k.system, &k.variant)
            .replace("asynctasq ", "aq ")
            .replace("celery ", "");
        if label_option(&k.variant, "micro").is_some() {
            for kind in ["small", "medium", "complex"] {
                for dir in ["encode", "decode"] {
                    times.extend(bar(
                        k,
                        &format!("{dir}_{kind}_p50_us"),
                        format!("{short} {kind} {dir}"),
                    ));
                }
            }
        } else if let Some(payload) = label_option(&k.variant, "payload") {
            if payload != "binary" {
                bytes.extend(bar(k, "bytes_per_task", format!("{short} {payload}")));
            }
        }
    }
    let name = place.name;
    Ok(vec![
        (
            format!("serialization-bytes-{name}.svg"),
            bars_with_ci(
                "Bytes per task in the broker (1 MiB binary left out)",
                "bytes",
                &bytes,
            )?,
        ),
        (
            format!("serialization-micro-{name}.svg"),
            bars_with_ci("Encode / decode per call, median", "µs", &times)?,
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_payload_and_serializer_is_a_case_but_the_unsupported_one() {
        let profile = Profile::load(&crate::project_root(), "ci").unwrap();
        let cases = Serialization.cases(&profile, Driver::Redis, 2);
        let labels: Vec<String> = cases.iter().map(Case::label).collect();
        // AsyncTasQ: 4 payloads and 3 ORMs; Celery: 6 payloads per serializer but one, and
        // the Django and Tortoise id and dict in json; 4 micro-benchmarks.
        assert_eq!(cases.len(), 7 + (3 * 6 - 1) + 4 + 4, "{labels:?}");
        for label in [
            "asynctasq-redis-serialization-asyncio-c10-payload_orm-drain",
            "asynctasq-redis-serialization-asyncio-c10-payload_django-drain",
            "asynctasq-redis-serialization-asyncio-c10-payload_tortoise-drain",
            "celery-redis-serialization-threads-c10-acks_late-payload_django_id-serializer_json-drain",
            "celery-redis-serialization-threads-c10-acks_late-payload_tortoise_dict-serializer_json-drain",
            "celery-redis-serialization-threads-c10-acks_late-payload_orm_dict-serializer_json-drain",
            "celery-redis-serialization-threads-c1-acks_late-micro_on-serializer_msgpack-drain",
        ] {
            assert!(labels.contains(&label.to_string()), "{label}: {labels:?}");
        }
        assert!(!labels
            .iter()
            .any(|l| l.contains("payload_complex-serializer_msgpack")));
        let binary = cases
            .iter()
            .find(|c| c.variant.option("payload") == Some("binary"))
            .unwrap();
        assert_eq!(binary.task_count, profile.serialization.binary_task_count);
    }

    #[test]
    fn each_orm_payload_names_its_orm_and_task() {
        assert_eq!(orm_of("orm_dict"), Some("sqlalchemy"));
        assert_eq!(orm_of("django"), Some("django"));
        assert_eq!(orm_of("tortoise_id"), Some("tortoise"));
        assert_eq!(orm_of("small"), None);
        assert!(is_by_value("django_dict") && !is_by_value("django_id"));
        assert_eq!(
            task_of(System::ASYNCTASQ, "tortoise"),
            "serialization:carry_orm"
        );
        assert_eq!(
            task_of(System::CELERY, "django_dict"),
            "serialization:carry_orm_dict"
        );
        assert_eq!(
            task_of(System::CELERY, "tortoise_id"),
            "serialization:carry_orm_id"
        );
        assert_eq!(task_of(System::CELERY, "binary"), "serialization:carry");
    }

    #[test]
    fn label_options_are_read_back() {
        let v = "threads-c10-acks_late-payload_orm_id-serializer_json";
        assert_eq!(label_option(v, "payload"), Some("orm_id"));
        assert_eq!(label_option(v, "serializer"), Some("json"));
        assert_eq!(serializer_name("celery", v), "celery json");
        assert_eq!(
            serializer_name("asynctasq", "asyncio-c10-payload_small"),
            "asynctasq msgspec"
        );
    }

    #[test]
    fn a_profile_out_of_range_names_the_file_and_key() {
        let mut profile = Profile::load(&crate::project_root(), "ci").unwrap();
        profile.serialization.binary_task_count = 0;
        let e = Serialization
            .validate_profile(&profile, "ci.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("ci.toml: [serialization] binary_task_count = 0"),
            "{e}"
        );
    }
}
