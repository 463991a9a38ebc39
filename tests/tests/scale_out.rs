//! Growing past one machine: three link processes share the active links,
//! each contract mirrored by exactly one of them; one is killed with SIGKILL
//! while records flow and its contracts move to the others without a record
//! lost or copied twice. Two portal processes serve the same partner, and a
//! push feed read from one resumes on the other.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use freeport_tests::{
    assert_exactly_once, event_numbers, eventually, metric, produce_sequence, read_cluster_topic,
    sequence_report, SseReader, TwoOrgs,
};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const PARTITIONS: i32 = 2;

/// Which live link runs each of `contracts`, read from their metrics; `None`
/// unless every contract runs on exactly one link.
async fn owners(
    orgs: &TwoOrgs,
    links: &[&str],
    contracts: &[String],
) -> Option<BTreeMap<String, String>> {
    let mut owners: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for link in links {
        let text = orgs.hub.metrics(link).await;
        for contract in contracts {
            let label = format!("contract=\"{contract}\"");
            if metric(&text, "freeport_link_state", &[&label, "state=\"running\""]) == Some(1.0) {
                owners
                    .entry(contract.clone())
                    .or_default()
                    .push(link.to_string());
            }
        }
    }
    if owners.len() != contracts.len() || owners.values().any(|o| o.len() != 1) {
        return None;
    }
    Some(
        owners
            .into_iter()
            .map(|(c, mut o)| (c, o.remove(0)))
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_links_share_the_contracts_and_a_killed_ones_move_without_loss_or_copies() {
    let mut orgs = TwoOrgs::start().await;
    let mut second = orgs.hub.spawn_another("link", "link-2");
    let mut third = orgs.hub.spawn_another("link", "link-3");
    let mut contracts = Vec::new();
    for i in 0..3 {
        let name = format!("s{i}");
        orgs.stream(&name, PARTITIONS, json!({})).await;
        contracts.push(
            orgs.active_contract(&name, &format!("globex.s{i}"), Value::Null)
                .await,
        );
    }
    let stop = CancellationToken::new();
    let producers: Vec<_> = (0..3)
        .map(|i| {
            tokio::spawn(produce_sequence(
                orgs.owner_cluster.cluster(),
                format!("s{i}"),
                PARTITIONS,
                stop.clone(),
            ))
        })
        .collect();

    // One contract each: the first link gave two of the three back.
    let links = ["link", "link-2", "link-3"];
    let owners_now = eventually(
        Duration::from_secs(60),
        "one contract on each link",
        || async {
            let owners = owners(&orgs, &links, &contracts).await?;
            let used: BTreeSet<&String> = owners.values().collect();
            (used.len() == 3).then_some(owners)
        },
    )
    .await;
    println!("owners: {owners_now:?}");

    // Kill the link that runs the first contract, records still flowing.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let victim = owners_now[&contracts[0]].clone();
    match victim.as_str() {
        "link" => orgs.hub.link.kill(),
        "link-2" => second.process.kill(),
        _ => third.process.kill(),
    }
    let survivors: Vec<&str> = links.iter().copied().filter(|l| *l != victim).collect();
    let after = eventually(
        Duration::from_secs(60),
        "the killed link's contract to move",
        || async { owners(&orgs, &survivors, &contracts).await },
    )
    .await;
    println!("after killing {victim}: {after:?}");
    assert_ne!(after[&contracts[0]], victim);
    // The others did not move: they were never without their holder.
    for contract in &contracts[1..] {
        assert_eq!(
            after[contract], owners_now[contract],
            "{contract} stayed put"
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.cancel();
    let mut produced = Vec::new();
    for producer in producers {
        produced.push(producer.await.expect("producer"));
    }

    // Every record of every stream exactly once, in order, at the partner.
    for (i, produced) in produced.into_iter().enumerate() {
        let topic = format!("globex.s{i}");
        let copied = eventually(Duration::from_secs(60), "the copy to catch up", || {
            let cluster = orgs.partner_cluster.cluster();
            let topic = topic.clone();
            async move {
                let copied = read_cluster_topic(&cluster, &topic, Duration::from_secs(2)).await;
                (copied.len() as u64 >= produced).then_some(copied)
            }
        })
        .await;
        println!(
            "{topic}: {produced} produced\n{}",
            sequence_report(&copied, PARTITIONS)
        );
        assert_exactly_once(&copied, produced, PARTITIONS);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_feed_read_on_one_portal_resumes_on_another() {
    let mut orgs = TwoOrgs::start().await;
    orgs.stream("orders", 2, json!({})).await;
    orgs.active_contract("orders", "globex.orders", Value::Null)
        .await;
    let other = orgs.hub.spawn_another("portal", "portal-2");
    let records: Vec<Value> = (0..10)
        .map(|n| json!({"key": format!("k{n}"), "value": {"n": n}}))
        .collect();
    let (status, _) = orgs
        .hub
        .produce("orders", &orgs.owner, Value::Array(records))
        .await;
    assert_eq!(status, 200);

    let mut reader = orgs.hub.feed("orders", &orgs.partner, "").await;
    let first = reader.records(4).await;
    let resume_at = first[3].id.clone().expect("an id");
    drop(reader);

    // The second portal: same partner, same key, nothing shared but the
    // catalog and the brokers.
    let second_url = format!(
        "https://localhost:{}/v1/streams/orders/events",
        other.listen
    );
    let response = eventually(
        Duration::from_secs(30),
        "the second portal to answer",
        || {
            let request = orgs
                .hub
                .http
                .get(&second_url)
                .bearer_auth(&orgs.partner)
                .header("Last-Event-ID", &resume_at);
            async move { request.send().await.ok().filter(|r| r.status() == 200) }
        },
    )
    .await;
    let mut reader = SseReader::new(response);
    let rest = reader.records(6).await;
    let mut seen = event_numbers(&first);
    seen.extend(event_numbers(&rest));
    assert_eq!(seen.len(), 10, "no record twice: {seen:?}");
    assert_eq!(
        seen.iter().copied().collect::<BTreeSet<_>>(),
        (0..10).collect::<BTreeSet<_>>(),
        "every record once: {seen:?}"
    );
}
