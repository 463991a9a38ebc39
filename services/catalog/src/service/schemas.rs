//! A stream's schema versions, the compatibility mode they are checked
//! under, and the global schema ids.

use std::collections::HashMap;

use freeport_common::names::StreamName;
use freeport_common::now_ms;
use serde_json::json;

use super::{Catalog, MAX_SCHEMA_BYTES};
use crate::audit::AuditRecord;
use crate::domain::{
    Change, Compatibility, Contract, Principal, RecordPart, SchemaFormat, SchemaVersion, Stream,
};
use crate::error::CatalogError;
use crate::store::Commit;

/// The global schema ids: one per distinct schema (format and canonical
/// text), the same on every stream, never reused. Built from the store on
/// first use; changed only under the write lock.
#[derive(Debug, Default)]
pub(super) struct SchemaIds {
    by_fingerprint: HashMap<[u8; 32], u32>,
    highest: u32,
}

impl SchemaIds {
    fn fingerprint(format: SchemaFormat, schema: &serde_json::Value) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        hash.update(format.as_str().as_bytes());
        hash.update(b"\n");
        // serde_json keeps object keys sorted: the same schema is the same text.
        hash.update(schema.to_string().as_bytes());
        hash.finalize().into()
    }

    pub(super) fn load(streams: &[Stream], contracts: &[Contract]) -> SchemaIds {
        let mut ids = SchemaIds::default();
        let retired = streams.iter().flat_map(|s| &s.retired_schemas);
        for schema in retired {
            ids.highest = ids.highest.max(schema.id);
            if let Some(fingerprint) = hex::decode(&schema.fingerprint)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
            {
                ids.by_fingerprint.entry(fingerprint).or_insert(schema.id);
            }
        }
        let delivered = contracts.iter().flat_map(|c| &c.delivered_schemas);
        for version in streams
            .iter()
            .flat_map(Stream::all_versions)
            .chain(delivered)
        {
            if version.id != 0 {
                ids.highest = ids.highest.max(version.id);
                ids.by_fingerprint
                    .entry(Self::fingerprint(version.format, &version.schema))
                    .or_insert(version.id);
            }
        }
        ids
    }

    pub(super) fn id_of(&mut self, format: SchemaFormat, schema: &serde_json::Value) -> u32 {
        *self
            .by_fingerprint
            .entry(Self::fingerprint(format, schema))
            .or_insert_with(|| {
                self.highest += 1;
                self.highest
            })
    }
}

/// `schema` as it is kept (see [`freeport_common::schema::canonical`]),
/// or refused with every problem unless it is a well-formed schema of
/// `format`.
fn well_formed(
    format: SchemaFormat,
    schema: serde_json::Value,
) -> Result<serde_json::Value, CatalogError> {
    freeport_common::schema::canonical(format, schema).map_err(|errors| {
        CatalogError::InvalidField(format!("schema {}", errors.join("; schema ")))
    })
}

/// Why a version in `format` cannot follow `stream`'s versions of `part`,
/// if it cannot: a schema keeps the format it started in.
fn format_change(stream: &Stream, part: RecordPart, format: SchemaFormat) -> Option<String> {
    let current = stream.format_of(part)?;
    (format != current).then(|| {
        format!(
            "stream {}'s {} schema is {}; a version in {} cannot follow it",
            stream.name,
            part.as_str(),
            current.as_str(),
            format.as_str()
        )
    })
}

impl Catalog {
    /// Gives each of `stream`'s versions without a global id its id. Call
    /// under the write lock, before the stream is committed.
    pub(super) fn number_schemas(&self, stream: &mut Stream) -> Result<(), CatalogError> {
        let versions = stream
            .schema_versions
            .iter_mut()
            .chain(&mut stream.key_schema.versions);
        for version in versions.filter(|v| v.id == 0) {
            version.id = self.schema_id(version.format, &version.schema)?;
        }
        Ok(())
    }

    /// The global id of `schema`: the one it has, or a new one. Call under
    /// the write lock, before what holds it is committed.
    fn schema_id(
        &self,
        format: SchemaFormat,
        schema: &serde_json::Value,
    ) -> Result<u32, CatalogError> {
        let mut ids = self
            .schema_ids
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if ids.is_none() {
            *ids = Some(SchemaIds::load(
                &self.store.list_streams()?,
                &self.store.list_contracts()?,
            ));
        }
        Ok(ids.as_mut().expect("loaded above").id_of(format, schema))
    }

    /// The schema contract `id`'s reshaped values are written under, for
    /// values written under the stream's schema `source_id`; derived and
    /// kept on the contract the first time (see the RPC).
    pub async fn delivered_schema(
        &self,
        id: &str,
        source_id: u32,
    ) -> Result<(SchemaVersion, SchemaVersion), CatalogError> {
        use freeport_common::schema::reshape;
        let _guard = self.write_lock.lock().await;
        let mut contract = self
            .store
            .get_contract(id)?
            .ok_or_else(|| CatalogError::ContractNotFound(id.to_string()))?;
        let stream = self.get_stream(&contract.stream)?;
        let source = stream
            .schema_versions
            .iter()
            .find(|v| v.id == source_id)
            .cloned()
            .ok_or_else(|| CatalogError::SchemaIdNotFound {
                stream: stream.name.to_string(),
                id: source_id,
            })?;
        if !reshape::reshapes(&contract.terms) {
            return Ok((source.clone(), source));
        }
        if let Some(known) = contract
            .delivered_schemas
            .iter()
            .find(|d| d.version == source.version)
        {
            return Ok((source, known.clone()));
        }
        let (delivered, audit) = self.derive_delivered(&mut contract, &source)?;
        self.commit(Commit::one(Change::Contract(contract), audit))
            .await?;
        Ok((source, delivered))
    }

    /// Derives the schema contract's reshaped values of `source` are
    /// written under, keeps it on the contract and gives the audit entry
    /// of it; the caller commits both. Call under the write lock.
    pub(super) fn derive_delivered(
        &self,
        contract: &mut Contract,
        source: &SchemaVersion,
    ) -> Result<(SchemaVersion, AuditRecord), CatalogError> {
        let id = &contract.id;
        let schema = freeport_common::schema::reshape::reshaped_schema(
            source.format,
            &source.schema,
            &contract.terms,
        )
        .map_err(|why| {
            CatalogError::InvalidField(format!(
                "contract {id}'s terms cannot reshape schema version {}: {why}",
                source.version
            ))
        })?;
        let delivered = SchemaVersion {
            version: source.version,
            id: self.schema_id(source.format, &schema)?,
            format: source.format,
            schema,
            registered_at_ms: now_ms(),
            registered_by: "system:terms".into(),
            deleted: false,
        };
        contract.delivered_schemas.push(delivered.clone());
        let audit = AuditRecord::new(
            "system:terms".to_string(),
            "contract.schema_delivered",
            format!("contract:{id}"),
            json!({"source_schema_id": source.id, "version": delivered.version, "id": delivered.id}),
        );
        Ok((delivered, audit))
    }

    /// Numbers the schema versions a store from before global ids holds,
    /// in one commit; run once at start. How many streams it changed. It
    /// also loads the ids from the same listing, so that no request pays
    /// for reading the whole store on the first id it needs.
    pub async fn number_unnumbered_schemas(&self) -> Result<usize, CatalogError> {
        let _guard = self.write_lock.lock().await;
        let streams = self.store.list_streams()?;
        *self
            .schema_ids
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(SchemaIds::load(&streams, &self.store.list_contracts()?));
        let mut changed = Vec::new();
        for mut stream in streams {
            if stream.all_versions().any(|v| v.id == 0) {
                self.number_schemas(&mut stream)?;
                changed.push(Change::Stream(stream));
            }
        }
        if changed.is_empty() {
            return Ok(0);
        }
        let count = changed.len();
        self.commit(Commit::audited(
            changed,
            vec![AuditRecord::new(
                "system:schema-ids".to_string(),
                "schema.ids_assigned",
                "catalog:schemas".to_string(),
                json!({"streams": count}),
            )],
        ))
        .await?;
        Ok(count)
    }

    /// Makes `schema` the next version of the stream's `part` schema,
    /// checked under that part's compatibility mode; `None` when it is the
    /// latest already. Leaves the stream untouched when it refuses.
    pub(super) fn evolve_schema(
        &self,
        stream: &mut Stream,
        part: RecordPart,
        format: SchemaFormat,
        schema: serde_json::Value,
        actor: &Principal,
        now: i64,
    ) -> Result<Option<SchemaVersion>, CatalogError> {
        if let Some(refusal) = format_change(stream, part, format) {
            return Err(CatalogError::InvalidField(refusal));
        }
        let history = stream.live_versions(part);
        if history.last().is_some_and(|latest| latest.schema == schema) {
            return Ok(None);
        }
        let mode = stream.compatibility_of(part);
        let problems =
            freeport_common::schema::incompatibilities_with(mode, format, &history, &schema);
        if !problems.is_empty() {
            return Err(CatalogError::IncompatibleSchema {
                stream: stream.name.to_string(),
                mode: mode.as_str(),
                problems,
            });
        }
        // Numbers go on past soft-deleted versions, never reusing theirs.
        let number = stream.versions(part).iter().map(|v| v.version).max();
        let version = SchemaVersion {
            version: number.map_or(1, |n| n + 1),
            id: self.schema_id(format, &schema)?,
            format,
            schema,
            registered_at_ms: now,
            registered_by: actor.audit_name(),
            deleted: false,
        };
        match part {
            RecordPart::Value => stream.value_schema = version.schema.clone(),
            RecordPart::Key => stream.key_schema.format = format,
        }
        stream.versions_mut(part).push(version.clone());
        stream.updated_at_ms = now;
        Ok(Some(version))
    }

    /// Registers a new version of a stream's value or key schema, after
    /// checking it under that part's compatibility mode. A schema the part
    /// has had before returns that version and writes nothing (as a schema
    /// registry does).
    pub async fn register_schema(
        &self,
        actor: &Principal,
        (name, part): (&StreamName, RecordPart),
        format: SchemaFormat,
        schema: serde_json::Value,
    ) -> Result<SchemaVersion, CatalogError> {
        let schema = well_formed(format, schema)?;
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
        // A soft-deleted version's schema registers again, as a new version
        // with the same id (as a schema registry does).
        if let Some(known) = stream
            .live_versions(part)
            .into_iter()
            .find(|v| v.format == format && v.schema == schema)
        {
            return Ok(known);
        }
        // A schema the part has not had is always a new version.
        let version = self
            .evolve_schema(&mut stream, part, format, schema, actor, now_ms())?
            .expect("not the latest: the part has not had it");
        self.commit(Commit::one(Change::Stream(stream.clone()), AuditRecord::new(
                actor.audit_name(),
                "stream.schema_register",
                format!("stream:{}", stream.name),
                json!({"part": part, "version": version.version, "id": version.id, "format": format, "compatibility": stream.compatibility_of(part)}),
            )))
        .await?;
        Ok(version)
    }

    /// What breaks if `schema` (in `format`, by default the part's)
    /// followed the stream's versions of `part`: checked against `version`
    /// alone (in the part's mode's directions), or with no version as
    /// registering it would check it. Writes nothing.
    pub fn check_schema(
        &self,
        actor: &Principal,
        (name, part): (&StreamName, RecordPart),
        format: Option<SchemaFormat>,
        schema: &serde_json::Value,
        version: Option<u32>,
    ) -> Result<Vec<String>, CatalogError> {
        let stream = self.get_stream(name)?;
        Self::require_owner(actor, &stream, "check schemas against it")?;
        let format = format.or(stream.format_of(part)).unwrap_or_default();
        let schema = &well_formed(format, schema.clone())?;
        if let Some(refusal) = format_change(&stream, part, format) {
            return Ok(vec![refusal]);
        }
        let history = stream.live_versions(part);
        let against = match version {
            None => history.as_slice(),
            Some(number) => {
                let found = history
                    .iter()
                    .position(|v| v.version == number)
                    .ok_or_else(|| CatalogError::SchemaVersionNotFound {
                        stream: stream.name.to_string(),
                        version: number,
                    })?;
                std::slice::from_ref(&history[found])
            }
        };
        Ok(freeport_common::schema::incompatibilities_with(
            stream.compatibility_of(part),
            format,
            against,
            schema,
        ))
    }

    /// Soft-deletes version `version` of the stream's `part` schema, or
    /// every live one with `None`; with `permanent`, removes it (or every
    /// one) for good, which it must have soft-deleted first. A value
    /// schema keeps one live version: what would leave none is refused.
    /// The numbers it deleted, oldest first, and the stream.
    pub async fn delete_schema_versions(
        &self,
        actor: &Principal,
        (name, part): (&StreamName, RecordPart),
        version: Option<u32>,
        permanent: bool,
    ) -> Result<(Vec<u32>, Stream), CatalogError> {
        let _guard = self.write_lock.lock().await;
        let mut stream = self.get_stream(name)?;
        Self::require_owner(actor, &stream, "delete its schema versions")?;
        let subject = format!("stream {}'s {} schema", stream.name, part.as_str());
        let versions = stream.versions(part);
        let targets: Vec<u32> = match version {
            Some(number) => {
                let found = versions
                    .iter()
                    .find(|v| v.version == number)
                    .ok_or_else(|| CatalogError::SchemaVersionNotFound {
                        stream: stream.name.to_string(),
                        version: number,
                    })?;
                match (permanent, found.deleted) {
                    (false, true) => {
                        return Err(CatalogError::Conflict(format!(
                            "version {number} of {subject} is soft-deleted already"
                        )))
                    }
                    (true, false) => {
                        return Err(CatalogError::Conflict(format!(
                            "version {number} of {subject} must be soft-deleted before it is deleted permanently"
                        )))
                    }
                    _ => vec![number],
                }
            }
            None if permanent => {
                if versions.iter().any(|v| !v.deleted) {
                    return Err(CatalogError::Conflict(format!(
                        "{subject} must be soft-deleted before it is deleted permanently"
                    )));
                }
                versions.iter().map(|v| v.version).collect()
            }
            None => {
                let live: Vec<u32> = versions
                    .iter()
                    .filter(|v| !v.deleted)
                    .map(|v| v.version)
                    .collect();
                if live.is_empty() {
                    return Err(CatalogError::Conflict(format!(
                        "{subject} is soft-deleted already"
                    )));
                }
                live
            }
        };
        if targets.is_empty() {
            return Err(CatalogError::SchemaVersionNotFound {
                stream: stream.name.to_string(),
                version: 0,
            });
        }
        let versions = stream.versions_mut(part);
        if permanent {
            let (gone, kept) = std::mem::take(versions)
                .into_iter()
                .partition(|v| targets.contains(&v.version));
            *versions = kept;
            let gone: Vec<SchemaVersion> = gone;
            stream
                .retired_schemas
                .extend(gone.iter().map(|v| crate::domain::RetiredSchema {
                    id: v.id,
                    fingerprint: hex::encode(SchemaIds::fingerprint(v.format, &v.schema)),
                }));
        } else {
            for v in versions.iter_mut().filter(|v| targets.contains(&v.version)) {
                v.deleted = true;
            }
        }
        if part == RecordPart::Value {
            let Some(latest) = stream.latest_live(RecordPart::Value) else {
                return Err(CatalogError::Conflict(format!(
                    "{subject} keeps one live version: produce and partners read under it. Register the schema you want next (PUT /registry/config/<subject> NONE lets it break with the old ones), then delete the old ones"
                )));
            };
            stream.value_schema = latest.schema.clone();
        }
        stream.updated_at_ms = now_ms();
        self.commit(Commit::one(
            Change::Stream(stream.clone()),
            AuditRecord::new(
                actor.audit_name(),
                "stream.schema_delete",
                format!("stream:{}", stream.name),
                json!({"part": part, "versions": targets, "permanent": permanent}),
            ),
        ))
        .await?;
        Ok((targets, stream))
    }

    /// Turns the check of produced records against the stream's schema off
    /// (`enabled` false) or on again; the owner's call, audited.
    pub async fn set_validation(
        &self,
        actor: &Principal,
        name: &StreamName,
        enabled: bool,
    ) -> Result<Stream, CatalogError> {
        self.change_setting(
            actor,
            name,
            ("turn its record validation off or on", "stream.validation"),
            |stream| {
                (stream.validation_off == enabled).then(|| {
                    stream.validation_off = !enabled;
                    json!({"enabled": enabled})
                })
            },
        )
        .await
    }

    /// Changes the mode later versions of the stream's `part` schema are
    /// checked under.
    pub async fn set_compatibility(
        &self,
        actor: &Principal,
        (name, part): (&StreamName, RecordPart),
        mode: Compatibility,
    ) -> Result<Stream, CatalogError> {
        self.change_setting(
            actor,
            name,
            ("change its compatibility mode", "stream.compatibility"),
            |stream| {
                let current = match part {
                    RecordPart::Value => &mut stream.compatibility,
                    RecordPart::Key => &mut stream.key_schema.compatibility,
                };
                (*current != mode).then(|| {
                    let before = std::mem::replace(current, mode);
                    json!({"part": part, "from": before, "to": mode})
                })
            },
        )
        .await
    }

    /// An owner's change to one of a stream's settings, `(what, action)`:
    /// `change` makes it and returns the audit entry's detail, or `None`
    /// when the stream is so already (then nothing is written).
    async fn change_setting(
        &self,
        actor: &Principal,
        name: &StreamName,
        (what, action): (&str, &str),
        change: impl FnOnce(&mut Stream) -> Option<serde_json::Value>,
    ) -> Result<Stream, CatalogError> {
        let _guard = self.write_lock.lock().await;
        let mut stream = self.get_stream(name)?;
        Self::require_owner(actor, &stream, what)?;
        let Some(detail) = change(&mut stream) else {
            return Ok(stream);
        };
        stream.updated_at_ms = now_ms();
        self.commit(Commit::one(
            Change::Stream(stream.clone()),
            AuditRecord::new(
                actor.audit_name(),
                action,
                format!("stream:{}", stream.name),
                detail,
            ),
        ))
        .await?;
        Ok(stream)
    }
}
