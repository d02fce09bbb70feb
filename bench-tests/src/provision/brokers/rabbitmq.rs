//! RabbitMQ: BENCH_AMQP_URL, testcontainers rabbitmq:4.0-management, the local default
//! port. Runs are isolated by uniquely named queues, deleted (with their exchanges) after.

use std::time::Duration;

use anyhow::{Context, Result};
use lapin::options::{
    BasicGetOptions, BasicRejectOptions, ExchangeDeleteOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::SyncRunner;
use testcontainers::{Container, GenericImage};

use super::{
    block_on, redact_url, Broker, BrokerInfo, Driver, Endpoint, Namespace, QueueRef, SourceSearch,
};

pub const ENV_URL: &str = "BENCH_AMQP_URL";
pub const DEFAULT_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const LIMIT: Duration = Duration::from_secs(5);

pub struct RabbitBroker {
    info: BrokerInfo,
    url: String,
    _container: Option<Container<GenericImage>>,
}

impl RabbitBroker {
    /// Follows the source order, reading the URL from the environment.
    pub fn provide(progress: &mut dyn FnMut(&str)) -> Result<RabbitBroker> {
        Self::provide_from(std::env::var(ENV_URL).ok(), progress)
    }

    /// Follows the source order with `env_url` standing for the environment's URL.
    pub fn provide_from(
        env_url: Option<String>,
        progress: &mut dyn FnMut(&str),
    ) -> Result<RabbitBroker> {
        let mut search = SourceSearch::new(Driver::Rabbitmq, ENV_URL, env_url);
        if let Some((url, version)) = search.from_env(server_version)? {
            return Ok(Self::found(ENV_URL.into(), url, version, None));
        }
        let image = "rabbitmq:4.0-management";
        if let Some((c, url, v)) = search.container(image, progress, || {
            let c = GenericImage::new("rabbitmq", "4.0-management")
                .with_wait_for(WaitFor::message_on_stdout("Server startup complete"))
                .with_exposed_port(5672.tcp())
                .start()?;
            let url = format!(
                "amqp://guest:guest@127.0.0.1:{}/%2f",
                c.get_host_port_ipv4(5672)?
            );
            let version = server_version(&url)?;
            Ok((c, url, version))
        }) {
            return Ok(Self::found(
                format!("testcontainers {image}"),
                url,
                v,
                Some(c),
            ));
        }
        if let Some(version) = search.attempt(DEFAULT_URL, || server_version(DEFAULT_URL)) {
            return Ok(Self::found(
                "local 127.0.0.1:5672".into(),
                DEFAULT_URL.into(),
                version,
                None,
            ));
        }
        Err(search.give_up(&format!("Set {ENV_URL}=amqp://user:pass@host:port/vhost, start Docker, or start RabbitMQ locally.")))
    }

    fn found(
        source: String,
        url: String,
        server_version: String,
        container: Option<Container<GenericImage>>,
    ) -> Self {
        RabbitBroker {
            info: BrokerInfo {
                driver: Driver::Rabbitmq,
                source,
                url: redact_url(&url),
                server_version,
            },
            url,
            _container: container,
        }
    }
}

impl Broker for RabbitBroker {
    fn info(&self) -> &BrokerInfo {
        &self.info
    }

    fn namespace(&self, _key: &str) -> Result<Box<dyn Namespace>> {
        Ok(Box::new(RabbitNamespace {
            url: self.url.clone(),
            queues: Default::default(),
        }))
    }
}

pub struct RabbitNamespace {
    url: String,
    /// Queues this run used, deleted on drop.
    queues: std::sync::Mutex<Vec<String>>,
}

impl Namespace for RabbitNamespace {
    fn driver(&self) -> Driver {
        Driver::Rabbitmq
    }

    fn endpoint(&self) -> Endpoint {
        Endpoint::Amqp {
            url: self.url.clone(),
        }
    }

    fn connection_url(&self) -> String {
        self.url.clone()
    }

    fn prepare(&self, queue: &str) -> Result<()> {
        self.queues.lock().expect("queues").push(queue.to_string());
        Ok(())
    }

    fn message_bytes(&self, queue: &QueueRef) -> Result<u64> {
        let queue = queue.name_on(Driver::Rabbitmq)?;
        let (url, queue) = (self.url.clone(), queue.to_string());
        block_on(LIMIT, async move {
            let conn = Connection::connect(&url, ConnectionProperties::default()).await?;
            let channel = conn.create_channel().await?;
            // Peek: get without ack, then reject with requeue, so the message stays.
            let got = channel
                .basic_get(&queue, BasicGetOptions { no_ack: false })
                .await?;
            let message = got.context("the queue is empty")?;
            let bytes = message.delivery.data.len() as u64;
            message
                .delivery
                .acker
                .reject(BasicRejectOptions { requeue: true })
                .await?;
            let _ = conn.close(200, "done").await;
            Ok(bytes)
        })
    }

    fn queue_depth(&self, queue: &QueueRef) -> Result<u64> {
        let queue = queue.name_on(Driver::Rabbitmq)?;
        let (url, queue) = (self.url.clone(), queue.to_string());
        block_on(LIMIT, async move {
            let conn = Connection::connect(&url, ConnectionProperties::default()).await?;
            let channel = conn.create_channel().await?;
            let passive = QueueDeclareOptions {
                passive: true,
                ..Default::default()
            };
            let declared = channel
                .queue_declare(&queue, passive, FieldTable::default())
                .await?;
            let _ = conn.close(200, "done").await;
            Ok(u64::from(declared.message_count()))
        })
    }
}

impl Drop for RabbitNamespace {
    fn drop(&mut self) {
        let queues = std::mem::take(&mut *self.queues.lock().expect("queues"));
        let url = self.url.clone();
        let _ = block_on(LIMIT, async move {
            let conn = Connection::connect(&url, ConnectionProperties::default()).await?;
            let channel = conn.create_channel().await?;
            for queue in &queues {
                // Celery declares a direct exchange named after the queue; AsyncTasQ a shared one.
                let _ = channel
                    .queue_delete(queue, QueueDeleteOptions::default())
                    .await;
                let _ = channel
                    .exchange_delete(queue, ExchangeDeleteOptions::default())
                    .await;
            }
            let _ = conn.close(200, "done").await;
            Ok(())
        });
    }
}

fn server_version(url: &str) -> Result<String> {
    let url = url.to_string();
    block_on(LIMIT, async move {
        let conn = Connection::connect(&url, ConnectionProperties::default()).await?;
        // lapin 2 does not expose the server's properties; the connection itself is the check.
        let version = "unknown (AMQP 0-9-1)".to_string();
        let _ = conn.close(200, "done").await;
        Ok(version)
    })
}
