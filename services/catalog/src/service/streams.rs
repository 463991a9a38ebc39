//! Streams: registration under the ownership rules, and discovery as the
//! policies allow it.

use std::collections::BTreeSet;

use freeport_common::authz::StreamFacts;
use freeport_common::names::{OrgName, StreamName};
use freeport_common::now_ms;
use freeport_common::ownership;
use serde_json::json;

use super::{check_text, who, Catalog, MAX_SCHEMA_BYTES};
use crate::audit::AuditRecord;
use crate::domain::{
    Change, Contract, NewStream, Organization, Principal, SchemaFormat, SchemaVersion, Stream,
};
use crate::error::CatalogError;
use crate::store::Commit;

const MAX_TAGS: usize = 20;

impl Catalog {
    /// Checks a new stream's own fields, all at once, and builds it with its
    /// first schema version. Uniqueness is [`Self::check_stream_free`]'s job.
    pub(super) fn build_stream(
        actor: &Principal,
        owner: OrgName,
        mut new: NewStream,
        now: i64,
    ) -> Result<Stream, CatalogError> {
        let mut problems = Vec::new();
        for (field, value) in [("title", &new.title), ("description", &new.description)] {
            if let Err(e) = check_text(field, value, false) {
                problems.push(e.to_string());
            }
        }
        if new.tags.len() > MAX_TAGS {
            problems.push(format!(
                "tags: {} given; the limit is {MAX_TAGS}",
                new.tags.len()
            ));
        }
        for tag in &new.tags {
            let chars = tag.chars().count();
            if chars == 0 || chars > 64 || tag.chars().any(char::is_control) {
                problems.push(format!(
                    "tags: {tag:?} must be 1 to 64 printable characters"
                ));
            }
        }
        if new.schema_format == SchemaFormat::JsonSchema && !new.value_schema.is_object() {
            problems.push("schema must be a JSON Schema object".into());
        } else {
            match freeport_common::schema::canonical(
                new.schema_format,
                new.value_schema.clone(),
                &[],
            ) {
                Ok(canonical) => new.value_schema = canonical,
                Err(errors) => problems.extend(errors.into_iter().map(|e| format!("schema {e}"))),
            }
        }
        let schema_len = serde_json::to_vec(&new.value_schema).map_or(usize::MAX, |v| v.len());
        if schema_len > MAX_SCHEMA_BYTES {
            problems.push(format!(
                "schema is {schema_len} bytes; the limit is {MAX_SCHEMA_BYTES}"
            ));
        }
        for field in &new.personal_data_fields {
            crate::domain::check_field(
                "personal_data_fields",
                field,
                &new.value_schema,
                &mut problems,
            );
        }
        if new.partitions == 0 {
            problems.push("partitions must be at least 1".into());
        }
        if new.retention_ms.is_some_and(|r| r <= 0) {
            problems.push("retention_ms must be positive".into());
        }
        if !problems.is_empty() {
            return Err(CatalogError::InvalidField(problems.join("; ")));
        }
        let tags: BTreeSet<String> = new.tags.into_iter().collect();
        Ok(Stream {
            name: new.name,
            owner,
            cluster: new.cluster,
            topic: new.topic,
            title: new.title,
            description: new.description,
            tags: tags.into_iter().collect(),
            created_at_ms: now,
            updated_at_ms: now,
            classification: new.classification,
            personal_data_fields: new.personal_data_fields,
            partitions: new.partitions,
            retention_ms: new.retention_ms,
            schema_format: new.schema_format,
            compatibility: new.compatibility,
            schema_versions: vec![SchemaVersion {
                version: 1,
                id: 0,
                format: new.schema_format,
                schema: new.value_schema.clone(),
                registered_at_ms: now,
                registered_by: actor.audit_name(),
                deleted: false,
                references: vec![],
                dependencies: vec![],
            }],
            value_schema: new.value_schema,
            validation_off: false,
            key_schema: Default::default(),
            retired_schemas: vec![],
        })
    }

    /// A new stream's name and topic must be free, and its topic no
    /// contract's destination. Call under the write lock.
    pub(super) fn check_stream_free(
        &self,
        stream: &Stream,
        existing: &[Stream],
    ) -> Result<(), CatalogError> {
        if existing.iter().any(|s| s.name == stream.name) {
            return Err(CatalogError::AlreadyExists(format!(
                "stream {:?} already exists",
                stream.name.as_str()
            )));
        }
        if let Some(other) = existing
            .iter()
            .find(|s| s.cluster == stream.cluster && s.topic == stream.topic)
        {
            return Err(CatalogError::AlreadyExists(format!(
                "topic {:?} on cluster {:?} is already offered as stream {:?}",
                stream.topic.as_str(),
                stream.cluster.as_str(),
                other.name.as_str()
            )));
        }
        self.check_destination_free(&stream.cluster, &stream.topic, None)
    }

    pub async fn register_stream(
        &self,
        actor: &Principal,
        new: NewStream,
    ) -> Result<Stream, CatalogError> {
        self.register_stream_for(actor, None, new).await
    }

    /// Registers a stream of `owner`'s: the caller's own organization, or,
    /// for an admin acting for one, the organization it names (audited as
    /// the admin's act on its behalf). The cluster must be the owner's.
    pub async fn register_stream_for(
        &self,
        actor: &Principal,
        owner: Option<OrgName>,
        new: NewStream,
    ) -> Result<Stream, CatalogError> {
        let owner = match (actor, owner) {
            (Principal::Admin { .. }, Some(owner)) => owner,
            (Principal::Admin { .. }, None) => return Err(CatalogError::Forbidden(
                "an admin key acts for no organization: name the one the stream is for in owner"
                    .into(),
            )),
            (Principal::Member { org, .. }, Some(owner)) if *org != owner => {
                return Err(CatalogError::Forbidden(format!(
                    "organization {org} cannot register streams for {owner}"
                )))
            }
            (Principal::Member { org, .. }, _) => org.clone(),
        };
        ownership::check_stream_home(
            &self.clusters,
            &new.cluster,
            new.topic.as_str(),
            owner.as_str(),
        )?;
        let mut stream = Self::build_stream(actor, owner, new, now_ms())?;

        let _guard = self.write_lock.lock().await;
        if self.store.get_org(&stream.owner)?.is_none() {
            return Err(CatalogError::OrganizationNotFound(stream.owner.to_string()));
        }
        self.check_stream_free(&stream, &self.store.list_streams()?)?;
        self.number_schemas(&mut stream)?;
        self.commit(Commit::one(
            Change::Stream(stream.clone()),
            AuditRecord::new(
                actor.audit_name(),
                "stream.register",
                format!("stream:{}", stream.name),
                json!({
                    "cluster": stream.cluster,
                    "topic": stream.topic,
                    "owner": stream.owner,
                    "on_behalf_of": actor.is_admin().then_some(&stream.owner),
                    "classification": stream.classification,
                    "personal_data_fields": stream.personal_data_fields,
                }),
            ),
        ))
        .await?;
        Ok(stream)
    }

    /// The stream's owner or an admin may change it.
    pub(super) fn require_owner(
        actor: &Principal,
        stream: &Stream,
        what: &str,
    ) -> Result<(), CatalogError> {
        if actor.is_admin() || actor.org() == Some(&stream.owner) {
            Ok(())
        } else {
            Err(CatalogError::Forbidden(format!(
                "only the owner of stream {} or an admin may {what}",
                stream.name
            )))
        }
    }

    pub fn get_stream(&self, name: &StreamName) -> Result<Stream, CatalogError> {
        self.store
            .get_stream(name)?
            .ok_or_else(|| CatalogError::StreamNotFound(name.to_string()))
    }

    pub fn list_streams(&self) -> Result<Vec<Stream>, CatalogError> {
        Ok(self.store.list_streams()?)
    }

    /// Whether `viewer` may discover `stream`, as the policies say (see
    /// `policies/freeport.cedar`): the facts are the viewer's organization
    /// and its kind, the stream's owner and classification, and whether the
    /// viewer holds a live contract on it.
    fn visible(
        &self,
        stream: &Stream,
        viewer: &Principal,
        orgs: &[Organization],
        contracts: &[Contract],
    ) -> bool {
        let Some(who) = who(viewer, orgs) else {
            return false;
        };
        let live = viewer.org().is_some_and(|org| {
            contracts
                .iter()
                .any(|c| &c.consumer == org && c.stream == stream.name && c.state.is_live())
        });
        let facts = StreamFacts {
            name: stream.name.as_str(),
            owner: stream.owner.as_str(),
            classification: stream.classification.as_str(),
        };
        self.authz.may_view_stream(&who, &facts, live)
    }

    /// The streams `viewer` may discover.
    pub fn list_streams_for(&self, viewer: &Principal) -> Result<Vec<Stream>, CatalogError> {
        let orgs = self.store.list_orgs()?;
        let contracts = self.store.list_contracts()?;
        Ok(self
            .store
            .list_streams()?
            .into_iter()
            .filter(|s| self.visible(s, viewer, &orgs, &contracts))
            .collect())
    }

    /// A stream `viewer` may discover; one it may not is not found.
    pub fn get_stream_for(
        &self,
        name: &StreamName,
        viewer: &Principal,
    ) -> Result<Stream, CatalogError> {
        let stream = self.get_stream(name)?;
        let orgs = self.store.list_orgs()?;
        let contracts = self.store.list_contracts()?;
        if self.visible(&stream, viewer, &orgs, &contracts) {
            Ok(stream)
        } else {
            Err(CatalogError::StreamNotFound(name.to_string()))
        }
    }
}
