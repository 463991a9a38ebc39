//! A stream's schema versions and the compatibility mode they are checked
//! under.

use freeport_common::names::StreamName;
use freeport_common::now_ms;
use serde_json::json;

use super::{Catalog, MAX_SCHEMA_BYTES};
use crate::audit::AuditRecord;
use crate::domain::{Change, Compatibility, Principal, SchemaFormat, SchemaVersion, Stream};
use crate::error::CatalogError;
use crate::store::Commit;

impl Catalog {
    /// Makes `schema` the stream's next version, checked against the latest
    /// under the stream's compatibility mode; `None` when it is the latest
    /// already. Leaves the stream untouched when it refuses.
    pub(super) fn evolve_schema(
        stream: &mut Stream,
        format: SchemaFormat,
        schema: serde_json::Value,
        actor: &Principal,
        now: i64,
    ) -> Result<Option<SchemaVersion>, CatalogError> {
        if format != stream.schema_format {
            return Err(CatalogError::InvalidField(format!(
                "stream {} uses {}; a version in {} cannot follow it",
                stream.name,
                stream.schema_format.as_str(),
                format.as_str()
            )));
        }
        if stream
            .schema_versions
            .last()
            .is_some_and(|latest| latest.schema == schema)
        {
            return Ok(None);
        }
        let problems = crate::schema::incompatibilities(
            stream.compatibility,
            format,
            &stream.value_schema,
            &schema,
        );
        if !problems.is_empty() {
            return Err(CatalogError::IncompatibleSchema {
                stream: stream.name.to_string(),
                mode: stream.compatibility.as_str(),
                problems,
            });
        }
        let version = SchemaVersion {
            version: stream.schema_versions.last().map_or(1, |v| v.version + 1),
            format,
            schema: schema.clone(),
            registered_at_ms: now,
            registered_by: actor.audit_name(),
        };
        stream.schema_versions.push(version.clone());
        stream.value_schema = schema;
        stream.updated_at_ms = now;
        Ok(Some(version))
    }

    /// Registers a new version of a stream's value schema, after checking
    /// it against the latest under the stream's compatibility mode. The same
    /// schema again returns the latest version and writes nothing.
    pub async fn register_schema(
        &self,
        actor: &Principal,
        name: &StreamName,
        format: SchemaFormat,
        schema: serde_json::Value,
    ) -> Result<SchemaVersion, CatalogError> {
        if let Err(errors) = crate::schema::check_schema(format, &schema) {
            return Err(CatalogError::InvalidField(format!(
                "schema {}",
                errors.join("; schema ")
            )));
        }
        let size = serde_json::to_vec(&schema)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        if size > MAX_SCHEMA_BYTES {
            return Err(CatalogError::InvalidField(format!(
                "schema is {size} bytes; the limit is {MAX_SCHEMA_BYTES}"
            )));
        }
        let _guard = self.write_lock.lock().await;
        let mut stream = self.get_stream(name)?;
        Self::require_owner(actor, &stream, "register schema versions")?;
        let Some(version) = Self::evolve_schema(&mut stream, format, schema, actor, now_ms())?
        else {
            // The latest version already: nothing to write.
            return Ok(stream
                .schema_versions
                .last()
                .cloned()
                .expect("a stream has a version"));
        };
        self.commit(Commit::one(Change::Stream(stream.clone()), AuditRecord::new(
                actor.audit_name(),
                "stream.schema_register",
                format!("stream:{}", stream.name),
                json!({"version": version.version, "format": format, "compatibility": stream.compatibility}),
            )))
        .await?;
        Ok(version)
    }

    /// Changes the mode later schema versions are checked under.
    pub async fn set_compatibility(
        &self,
        actor: &Principal,
        name: &StreamName,
        mode: Compatibility,
    ) -> Result<Stream, CatalogError> {
        let _guard = self.write_lock.lock().await;
        let mut stream = self.get_stream(name)?;
        Self::require_owner(actor, &stream, "change its compatibility mode")?;
        if stream.compatibility == mode {
            return Ok(stream);
        }
        let before = stream.compatibility;
        stream.compatibility = mode;
        stream.updated_at_ms = now_ms();
        self.commit(Commit::one(
            Change::Stream(stream.clone()),
            AuditRecord::new(
                actor.audit_name(),
                "stream.compatibility",
                format!("stream:{}", stream.name),
                json!({"from": before, "to": mode}),
            ),
        ))
        .await?;
        Ok(stream)
    }
}
