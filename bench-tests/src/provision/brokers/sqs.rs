//! SQS: BENCH_SQS_ENDPOINT (or real AWS when AWS credentials are configured and the
//! variable is set to "aws"), localstack when Docker answers, else moto's server from the
//! venv on a free loopback port. An emulator is labelled as such in every result.
//! A queue per run, created before and deleted after.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::SyncRunner;
use testcontainers::{Container, GenericImage, ImageExt};

use super::{Broker, BrokerInfo, Driver, Endpoint, Namespace, QueueRef, SourceSearch};
use crate::measure::procs::ManagedChild;
use crate::provision::python::PythonEnv;

pub const ENV_ENDPOINT: &str = "BENCH_SQS_ENDPOINT";
const REGION: &str = "us-east-1";

/// Where SQS is and how to talk to it.
#[derive(Clone)]
struct SqsEndpoint {
    /// None: AWS itself.
    url: Option<String>,
    region: String,
    access_key: String,
    secret_key: String,
    emulator: Option<&'static str>,
}

pub struct SqsBroker {
    info: BrokerInfo,
    endpoint: SqsEndpoint,
    python: PathBuf,
    fixtures: PathBuf,
    _moto: Option<(ManagedChild, tempfile::TempDir)>,
    _container: Option<Container<GenericImage>>,
}

impl SqsBroker {
    /// Follows the source order, reading the endpoint from the environment.
    pub fn provide(python: &PythonEnv, progress: &mut dyn FnMut(&str)) -> Result<SqsBroker> {
        Self::provide_from(std::env::var(ENV_ENDPOINT).ok(), python, progress)
    }

    /// Follows the source order with `env_endpoint` standing for BENCH_SQS_ENDPOINT.
    pub fn provide_from(
        env_endpoint: Option<String>,
        python: &PythonEnv,
        progress: &mut dyn FnMut(&str),
    ) -> Result<SqsBroker> {
        let mut search = SourceSearch::new(Driver::Sqs, ENV_ENDPOINT, env_endpoint);
        let fixtures = crate::project_root().join("fixtures/python");
        let mut broker = SqsBroker {
            info: BrokerInfo {
                driver: Driver::Sqs,
                source: String::new(),
                url: String::new(),
                server_version: String::new(),
            },
            endpoint: SqsEndpoint {
                url: None,
                region: std::env::var("AWS_DEFAULT_REGION").unwrap_or_else(|_| REGION.into()),
                access_key: "testing".into(),
                secret_key: "testing".into(),
                emulator: None,
            },
            python: python.python.clone(),
            fixtures,
            _moto: None,
            _container: None,
        };
        let from_env = search.from_env(|url| {
            if url == "aws" {
                broker.endpoint.access_key = std::env::var("AWS_ACCESS_KEY_ID")
                    .context("BENCH_SQS_ENDPOINT=aws needs AWS_ACCESS_KEY_ID")?;
                broker.endpoint.secret_key = std::env::var("AWS_SECRET_ACCESS_KEY")
                    .context("BENCH_SQS_ENDPOINT=aws needs AWS_SECRET_ACCESS_KEY")?;
            } else {
                broker.endpoint.url = Some(url.to_string());
            }
            broker.admin(&["ping"], Duration::from_secs(10))
        })?;
        if from_env.is_some() {
            broker.set_info(ENV_ENDPOINT.into(), "AWS SQS or the endpoint given".into());
            return Ok(broker);
        }
        if let Some((container, url)) =
            search.container("localstack/localstack:4.0", progress, || {
                let container = GenericImage::new("localstack/localstack", "4.0")
                    .with_wait_for(WaitFor::message_on_stdout("Ready."))
                    .with_exposed_port(4566.tcp())
                    .with_env_var("SERVICES", "sqs")
                    .start()?;
                let url = format!("http://127.0.0.1:{}", container.get_host_port_ipv4(4566)?);
                Ok((container, url))
            })
        {
            broker.endpoint.url = Some(url);
            broker.endpoint.emulator = Some("localstack");
            broker._container = Some(container);
            broker.set_info(
                "testcontainers localstack".into(),
                "localstack 4.0 (emulator)".into(),
            );
            return Ok(broker);
        }
        let Some((child, dir, url)) =
            search.attempt("moto_server from the venv", || start_moto(python, progress))
        else {
            return Err(search.give_up(&format!("Set {ENV_ENDPOINT}=http://host:port (or 'aws' with AWS credentials), or start Docker.")));
        };
        broker.endpoint.url = Some(url);
        broker.endpoint.emulator = Some("moto");
        broker._moto = Some((child, dir));
        let version = python.packages.get("moto").cloned().unwrap_or_default();
        broker.set_info(
            "moto_server from the venv".into(),
            format!("moto {version} (emulator)"),
        );
        Ok(broker)
    }

    fn set_info(&mut self, source: String, version: String) {
        self.info.source = source;
        self.info.url = self
            .endpoint
            .url
            .clone()
            .unwrap_or_else(|| format!("https://sqs.{}.amazonaws.com", self.endpoint.region));
        self.info.server_version = version;
    }

    fn admin(&self, args: &[&str], limit: Duration) -> Result<serde_json::Value> {
        admin(&self.python, &self.fixtures, &self.endpoint, args, limit)
    }
}

fn admin(
    python: &PathBuf,
    fixtures: &PathBuf,
    endpoint: &SqsEndpoint,
    args: &[&str],
    limit: Duration,
) -> Result<serde_json::Value> {
    let dir = tempfile::tempdir()?;
    let mut command = Command::new(python);
    command
        .current_dir(dir.path())
        .env("PYTHONPATH", fixtures)
        .args(["-m", "tasq_fixtures.sqs_admin"])
        .args(args);
    for (k, v) in aws_env(endpoint) {
        command.env(k, v);
    }
    if let Some(url) = &endpoint.url {
        command.env("BENCH_SQS_ENDPOINT", url);
    }
    let (status, stdout) =
        crate::measure::procs::run_bounded("sqs-admin", &mut command, dir.path(), limit)?;
    if !status.success() {
        bail!(
            "sqs {} failed: {}",
            args.join(" "),
            crate::measure::procs::tail_of_file(&dir.path().join("sqs-admin.err"), 5)
        );
    }
    Ok(serde_json::from_str(stdout.trim())?)
}

fn aws_env(endpoint: &SqsEndpoint) -> Vec<(String, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID".into(), endpoint.access_key.clone()),
        ("AWS_SECRET_ACCESS_KEY".into(), endpoint.secret_key.clone()),
        ("AWS_DEFAULT_REGION".into(), endpoint.region.clone()),
    ]
}

impl Broker for SqsBroker {
    fn info(&self) -> &BrokerInfo {
        &self.info
    }

    fn namespace(&self, _key: &str) -> Result<Box<dyn Namespace>> {
        Ok(Box::new(SqsNamespace {
            endpoint: self.endpoint.clone(),
            python: self.python.clone(),
            fixtures: self.fixtures.clone(),
            queues: Default::default(),
        }))
    }
}

pub struct SqsNamespace {
    endpoint: SqsEndpoint,
    python: PathBuf,
    fixtures: PathBuf,
    queues: std::sync::Mutex<Vec<String>>,
}

impl Namespace for SqsNamespace {
    fn driver(&self) -> Driver {
        Driver::Sqs
    }

    fn endpoint(&self) -> Endpoint {
        Endpoint::Sqs {
            url: self.endpoint.url.clone(),
            region: self.endpoint.region.clone(),
            access_key: self.endpoint.access_key.clone(),
            secret_key: self.endpoint.secret_key.clone(),
            aws_env: aws_env(&self.endpoint),
        }
    }

    fn connection_url(&self) -> String {
        self.endpoint.url.clone().unwrap_or_default()
    }

    fn prepare(&self, queue: &str) -> Result<()> {
        admin(
            &self.python,
            &self.fixtures,
            &self.endpoint,
            &["create", queue],
            Duration::from_secs(20),
        )?;
        self.queues.lock().expect("queues").push(queue.to_string());
        Ok(())
    }

    fn message_bytes(&self, queue: &QueueRef) -> Result<u64> {
        let queue = queue.name_on(Driver::Sqs)?;
        let out = admin(
            &self.python,
            &self.fixtures,
            &self.endpoint,
            &["peek", queue],
            Duration::from_secs(20),
        )?;
        out["bytes"].as_u64().context("no size in the answer")
    }

    fn queue_depth(&self, queue: &QueueRef) -> Result<u64> {
        let queue = queue.name_on(Driver::Sqs)?;
        let out = admin(
            &self.python,
            &self.fixtures,
            &self.endpoint,
            &["depth", queue],
            Duration::from_secs(20),
        )?;
        out["depth"].as_u64().context("no depth in the answer")
    }

    fn api_calls(&self, queue: &str) -> Result<Option<BTreeMap<String, u64>>> {
        if self.endpoint.emulator != Some("moto") {
            return Ok(None);
        }
        let out = admin(
            &self.python,
            &self.fixtures,
            &self.endpoint,
            &["calls", queue],
            Duration::from_secs(30),
        )?;
        Ok(Some(serde_json::from_value(out["calls"].clone())?))
    }

    fn caveat(&self) -> Option<String> {
        self.endpoint
            .emulator
            .map(|e| format!("SQS emulator ({e}), not AWS SQS: its speed is the emulator's"))
    }
}

impl Drop for SqsNamespace {
    fn drop(&mut self) {
        for queue in std::mem::take(&mut *self.queues.lock().expect("queues")) {
            let _ = admin(
                &self.python,
                &self.fixtures,
                &self.endpoint,
                &["delete", &queue],
                Duration::from_secs(20),
            );
        }
    }
}

fn start_moto(
    python: &PythonEnv,
    progress: &mut dyn FnMut(&str),
) -> Result<(ManagedChild, tempfile::TempDir, String)> {
    let moto = python.bin("moto_server");
    if !moto.exists() {
        bail!("{} is missing from the venv", moto.display());
    }
    let dir = tempfile::tempdir()?;
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    progress(&format!(
        "starting moto_server (SQS emulator) on 127.0.0.1:{port}"
    ));
    let mut command = Command::new(moto);
    command
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .current_dir(dir.path());
    let mut child = crate::measure::procs::spawn_server("moto-server", command, dir.path())?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            stream.set_read_timeout(Some(Duration::from_secs(5)))?;
            let request = "POST /moto-api/recorder/start-recording HTTP/1.0\r\nHost: moto\r\nContent-Length: 0\r\n\r\n";
            stream.write_all(request.as_bytes())?;
            let mut reply = String::new();
            let _ = stream.read_to_string(&mut reply);
            if !reply.contains("Recording is set to True") {
                bail!("moto's request recorder did not start: {reply}");
            }
            return Ok((child, dir, format!("http://127.0.0.1:{port}")));
        }
        if child.try_exit().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let tail = child.log_tail(10);
    child.stop(Duration::from_secs(2));
    bail!("moto_server did not listen on port {port}: {tail}")
}
