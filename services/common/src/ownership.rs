//! Who may put what where. Every configured cluster belongs to one
//! organization (`clusters.NAME.owner`): a stream lives on a cluster of its
//! owner, a contract delivers into a cluster of its consumer, and topics
//! under `freeport.` belong to the hub. The catalog enforces these rules on
//! every write; the portal asks the same questions before it touches a
//! cluster (creating a topic for a registration, say), so a refused request
//! leaves nothing behind.

use crate::config::Clusters;
use crate::error::ErrorCode;
use crate::names::{is_reserved_topic, ClusterName, RESERVED_TOPIC_PREFIX};

/// Why a topic on a cluster is not the caller's to use: a stable code
/// ([`ErrorCode::NotClusterOwner`], [`ErrorCode::ReservedTopic`], or
/// [`ErrorCode::InvalidField`] for a cluster nobody configured) and a
/// message naming the field and the values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    code: ErrorCode,
    message: String,
}

impl Refusal {
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    fn new(code: ErrorCode, message: String) -> Refusal {
        Refusal { code, message }
    }
}

/// A topic name the hub keeps for itself is refused wherever it comes from.
pub fn check_topic(field: &'static str, topic: &str) -> Result<(), Refusal> {
    if is_reserved_topic(topic) {
        let topic: String = topic.chars().take(249).collect();
        return Err(Refusal::new(
            ErrorCode::ReservedTopic,
            format!("{field}: topic {topic:?} is reserved: topics under {RESERVED_TOPIC_PREFIX:?} belong to the hub"),
        ));
    }
    Ok(())
}

/// May `org` keep a stream's topic `topic` on `cluster`? Only on a cluster
/// it owns, and never a reserved topic.
pub fn check_stream_home(
    clusters: &Clusters,
    cluster: &ClusterName,
    topic: &str,
    org: &str,
) -> Result<(), Refusal> {
    check_topic("topic", topic)?;
    check_owned(clusters, "cluster", cluster, org, "register streams")
}

/// May a contract of `consumer` deliver into `topic` on `cluster`? Only into
/// a cluster the consumer owns, and never a reserved topic.
pub fn check_destination(
    clusters: &Clusters,
    cluster: &ClusterName,
    topic: &str,
    consumer: &str,
) -> Result<(), Refusal> {
    check_topic("destination.topic", topic)?;
    check_owned(
        clusters,
        "destination.cluster",
        cluster,
        consumer,
        "receive streams",
    )
}

fn check_owned(
    clusters: &Clusters,
    field: &'static str,
    cluster: &ClusterName,
    org: &str,
    what: &'static str,
) -> Result<(), Refusal> {
    let Some(config) = clusters.get(cluster) else {
        let known: Vec<_> = clusters.keys().map(ClusterName::as_str).collect();
        return Err(Refusal::new(
            ErrorCode::ClusterNotFound,
            format!(
                "{field}: unknown cluster {:?} (known: {})",
                cluster.as_str(),
                known.join(", ")
            ),
        ));
    };
    match &config.owner {
        None => Err(Refusal::new(
            ErrorCode::NotClusterOwner,
            format!("{field}: cluster {:?} has no owner configured (clusters.{cluster}.owner), so nothing may use it", cluster.as_str()),
        )),
        Some(owner) if owner.as_str() == org => Ok(()),
        Some(owner) => {
            let own: Vec<_> = clusters
                .iter()
                .filter(|(_, c)| c.is_owned_by(org))
                .map(|(name, _)| name.as_str())
                .collect();
            let own = if own.is_empty() {
                "on its own clusters, and it owns none".to_string()
            } else {
                format!("on its own: {}", own.join(", "))
            };
            Err(Refusal::new(
                ErrorCode::NotClusterOwner,
                format!(
                    "{field}: cluster {:?} belongs to organization {:?}; {org:?} may {what} only {own}",
                    cluster.as_str(),
                    owner.as_str()
                ),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ClusterConfig;
    use crate::names::OrgName;

    fn clusters() -> Clusters {
        let mut clusters = Clusters::new();
        for (name, owner) in [("a1", "acme"), ("a2", "acme"), ("g", "globex")] {
            clusters.insert(
                ClusterName::parse(name).unwrap(),
                ClusterConfig::owned_by(OrgName::parse(owner).unwrap(), "x:1"),
            );
        }
        clusters.insert(
            ClusterName::parse("nobody").unwrap(),
            ClusterConfig::plaintext("x:1"),
        );
        clusters
    }

    fn name(text: &str) -> ClusterName {
        ClusterName::parse(text).unwrap()
    }

    #[test]
    fn streams_live_on_their_owners_clusters() {
        let clusters = clusters();
        check_stream_home(&clusters, &name("a1"), "orders", "acme").unwrap();
        check_stream_home(&clusters, &name("a2"), "orders", "acme").unwrap();
        let refusal = check_stream_home(&clusters, &name("a1"), "mine", "globex").unwrap_err();
        assert_eq!(refusal.code(), ErrorCode::NotClusterOwner);
        let text = refusal.to_string();
        assert!(text.contains("belongs to organization \"acme\""), "{text}");
        assert!(text.contains("on its own: g"), "{text}");
        let refusal = check_stream_home(&clusters, &name("g"), "x", "initech").unwrap_err();
        assert!(refusal.to_string().contains("it owns none"), "{refusal}");
    }

    #[test]
    fn contracts_deliver_into_the_consumers_clusters() {
        let clusters = clusters();
        check_destination(&clusters, &name("g"), "copy", "globex").unwrap();
        for cluster in ["a1", "nobody"] {
            let refusal =
                check_destination(&clusters, &name(cluster), "copy", "globex").unwrap_err();
            assert_eq!(refusal.code(), ErrorCode::NotClusterOwner, "{refusal}");
            assert!(
                refusal.to_string().starts_with("destination.cluster"),
                "{refusal}"
            );
        }
        let refusal = check_destination(&clusters, &name("mars"), "copy", "globex").unwrap_err();
        assert_eq!(refusal.code(), ErrorCode::ClusterNotFound);
        assert!(
            refusal.to_string().contains("known: a1, a2, g, nobody"),
            "{refusal}"
        );
    }

    #[test]
    fn the_hubs_topics_are_nobodys() {
        let clusters = clusters();
        for topic in ["freeport.dlq.1", "Freeport.catalog"] {
            let refusal = check_stream_home(&clusters, &name("a1"), topic, "acme").unwrap_err();
            assert_eq!(refusal.code(), ErrorCode::ReservedTopic);
            let refusal = check_destination(&clusters, &name("g"), topic, "globex").unwrap_err();
            assert_eq!(refusal.code(), ErrorCode::ReservedTopic);
            assert!(
                refusal.to_string().starts_with("destination.topic"),
                "{refusal}"
            );
        }
    }
}
