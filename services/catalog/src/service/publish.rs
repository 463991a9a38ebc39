//! AsyncAPI publishing: a document registers or updates the streams it
//! describes, all or nothing, and is kept for serving.

use freeport_common::names::StreamName;
use freeport_common::now_ms;
use freeport_common::ownership;
use serde_json::json;

use super::{text_at, Catalog};
use crate::asyncapi::Problem;
use crate::audit::AuditRecord;
use crate::domain::{AsyncApiDocument, Change, Principal, RecordPart, Stream};
use crate::error::CatalogError;
use crate::store::Commit;

impl Catalog {
    /// Publishes an AsyncAPI 3.0 document: registers the streams it
    /// describes, or updates those the caller owns (a new schema version,
    /// checked under the stream's mode). All or nothing: when anything is
    /// wrong, every problem comes back with its JSON pointer and nothing is
    /// written. A dry run checks and plans without writing.
    pub async fn publish_asyncapi(
        &self,
        actor: &Principal,
        text: &str,
        dry_run: bool,
    ) -> Result<Result<Vec<Stream>, Vec<Problem>>, CatalogError> {
        let owner = Self::require_member(actor, "publish AsyncAPI documents")?.clone();
        let validator = self.asyncapi.as_ref().ok_or_else(|| {
            CatalogError::NotConfigured(
                "AsyncAPI publishing is not configured on this catalog: set catalog.asyncapi_schema to the official AsyncAPI 3.0 JSON Schema".into(),
            )
        })?;
        let document = match crate::asyncapi::parse(text) {
            Ok(document) => document,
            Err(problem) => return Ok(Err(vec![problem])),
        };
        let planned =
            match crate::asyncapi::plan(&document, validator, |c| self.clusters.contains_key(c)) {
                Ok(planned) => planned,
                Err(problems) => return Ok(Err(problems)),
            };

        let described: Vec<StreamName> = planned.iter().map(|p| p.new.name.clone()).collect();
        let _guard = self.write_lock.lock().await;
        let now = now_ms();
        let existing_streams = self.store.list_streams()?;
        let mut problems = Vec::new();
        let mut streams = Vec::new();
        let mut audit = Vec::new();
        for plan in planned {
            let at = plan.pointer.clone();
            let mut refuse = |message: String| {
                problems.push(Problem {
                    pointer: at.clone(),
                    message,
                })
            };
            match existing_streams.iter().find(|s| s.name == plan.new.name) {
                None => {
                    if let Err(refusal) = ownership::check_stream_home(
                        &self.clusters,
                        &plan.new.cluster,
                        plan.new.topic.as_str(),
                        owner.as_str(),
                    ) {
                        refuse(refusal.to_string());
                        continue;
                    }
                    let mut stream = match Self::build_stream(actor, owner.clone(), plan.new, now) {
                        Ok(stream) => stream,
                        Err(e) => {
                            refuse(e.to_string());
                            continue;
                        }
                    };
                    if let Err(e) = self
                        .check_stream_free(&stream, &existing_streams)
                        .and_then(|()| self.number_schemas(&mut stream))
                    {
                        refuse(e.to_string());
                        continue;
                    }
                    audit.push(AuditRecord::new(
                        actor.audit_name(),
                        "stream.publish",
                        format!("stream:{}", stream.name),
                        json!({"created": true, "cluster": stream.cluster, "topic": stream.topic, "version": 1}),
                    ));
                    streams.push(stream);
                }
                Some(current) => {
                    if current.owner != owner {
                        refuse(format!(
                            "stream {} belongs to {}",
                            current.name, current.owner
                        ));
                        continue;
                    }
                    if current.cluster != plan.new.cluster || current.topic != plan.new.topic {
                        refuse(format!(
                            "stream {} is topic {} on {}; a document cannot move it",
                            current.name, current.topic, current.cluster
                        ));
                        continue;
                    }
                    let mut stream = current.clone();
                    match self.evolve_schema(
                        &mut stream,
                        RecordPart::Value,
                        plan.new.schema_format,
                        super::schemas::Proposed::alone(plan.new.value_schema),
                        actor,
                        now,
                    ) {
                        Ok(_) => {}
                        Err(CatalogError::IncompatibleSchema { mode, problems, .. }) => {
                            for b in problems {
                                refuse(format!("payload is not {mode} compatible: {b}"));
                            }
                            continue;
                        }
                        Err(e) => {
                            refuse(e.to_string());
                            continue;
                        }
                    }
                    stream.title = plan.new.title;
                    stream.description = plan.new.description;
                    stream.tags = plan.new.tags;
                    stream.classification = plan.new.classification;
                    if stream == *current {
                        continue;
                    }
                    stream.updated_at_ms = now;
                    audit.push(AuditRecord::new(
                        actor.audit_name(),
                        "stream.publish",
                        format!("stream:{}", stream.name),
                        json!({"created": false, "version": stream.schema_versions.last().map(|v| v.version)}),
                    ));
                    streams.push(stream);
                }
            }
        }
        if !problems.is_empty() {
            return Ok(Err(problems));
        }
        let title = text_at(&document, "/info/title");
        let id = format!(
            "{owner}:{}",
            document
                .get("id")
                .and_then(serde_json::Value::as_str)
                .unwrap_or(&title)
        );
        let unchanged = self
            .store
            .get_document(&id)?
            .is_some_and(|d| d.text == text);
        if dry_run || (streams.is_empty() && unchanged) {
            return Ok(Ok(streams));
        }
        let record = AsyncApiDocument {
            id: id.clone(),
            owner: owner.clone(),
            title,
            version: text_at(&document, "/info/version"),
            text: text.to_string(),
            streams: described,
            published_at_ms: now,
            published_by: actor.audit_name(),
        };
        audit.push(AuditRecord::new(
            actor.audit_name(),
            "asyncapi.publish",
            format!("asyncapi:{id}"),
            json!({"streams": record.streams, "version": record.version, "bytes": text.len()}),
        ));
        let mut changes: Vec<Change> = streams.iter().cloned().map(Change::Stream).collect();
        changes.push(Change::Document(record));
        self.commit(Commit::audited(changes, audit)).await?;
        Ok(Ok(streams))
    }

    pub fn list_documents(&self) -> Result<Vec<AsyncApiDocument>, CatalogError> {
        Ok(self.store.list_documents()?)
    }
}
