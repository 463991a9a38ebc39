//! `freeport topic read`: prints a topic's records as JSON lines, with
//! partition, offset, timestamp, key, value and headers.

use std::time::{Duration, Instant};

use base64::Engine;
use clap::Subcommand;
use freeport_common::config::ClusterConfig;
use freeport_common::kafka::{client_config, partition_count};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::{Message, Offset, TopicPartitionList};

#[derive(Subcommand)]
pub enum TopicCommand {
    /// Print a topic's records from the beginning as JSON lines.
    Read {
        /// Bootstrap servers of the cluster (`GET /v1/clusters` lists them).
        #[arg(long)]
        bootstrap: String,
        #[arg(long)]
        topic: String,
        /// Stop after this many records.
        #[arg(long)]
        max: Option<usize>,
        /// Stop when no record has arrived for this many seconds.
        #[arg(long, default_value_t = 5)]
        idle_secs: u64,
    },
}

/// Text when the bytes are UTF-8, else `base64:<...>`.
fn show(bytes: Option<&[u8]>) -> serde_json::Value {
    match bytes {
        None => serde_json::Value::Null,
        Some(b) => match std::str::from_utf8(b) {
            Ok(text) => serde_json::Value::String(text.to_string()),
            Err(_) => serde_json::Value::String(format!(
                "base64:{}",
                base64::engine::general_purpose::STANDARD.encode(b)
            )),
        },
    }
}

pub async fn run(command: TopicCommand) -> anyhow::Result<()> {
    let TopicCommand::Read {
        bootstrap,
        topic,
        max,
        idle_secs,
    } = command;
    let cluster = ClusterConfig::plaintext(bootstrap);
    let Some(partitions) = partition_count(&cluster, &topic).await? else {
        anyhow::bail!("topic {topic:?} does not exist");
    };
    let consumer: BaseConsumer = client_config(&cluster, "freeport-topic-read")
        .set("group.id", "freeport-topic-read")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "100")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    for partition in 0..i32::try_from(partitions)? {
        assignment.add_partition_offset(&topic, partition, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let idle = Duration::from_secs(idle_secs);
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let mut seen = 0;
        let mut last = Instant::now();
        while max.is_none_or(|m| seen < m) && last.elapsed() < idle {
            let Some(message) = consumer.poll(Duration::from_millis(100)) else {
                continue;
            };
            let message = message?;
            last = Instant::now();
            seen += 1;
            let headers: Vec<_> = message
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| serde_json::json!({"name": h.key, "value": show(h.value)}))
                        .collect()
                })
                .unwrap_or_default();
            let line = serde_json::json!({
                "partition": message.partition(),
                "offset": message.offset(),
                "timestamp": message.timestamp().to_millis(),
                "key": show(message.key()),
                "value": show(message.payload()),
                "headers": headers,
            });
            println!("{line}");
        }
        Ok(())
    })
    .await?
}
