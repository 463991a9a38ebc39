//! A stream's schema versions, the compatibility mode they are checked
//! under, and the global schema ids.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};

use freeport_common::names::StreamName;
use freeport_common::now_ms;
use freeport_common::schema::{Dependency, Reference, Source};
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
///
/// It also knows which versions refer to which (schema references), so
/// that deleting a referenced version is refused without reading the
/// store: versions are keyed by stream, part and number.
#[derive(Debug, Default)]
pub(super) struct SchemaIds {
    by_fingerprint: HashMap<[u8; 32], u32>,
    highest: u32,
    referrers: HashMap<VersionKey, BTreeSet<VersionKey>>,
}

/// A schema version by its stream, part and number.
type VersionKey = (String, RecordPart, u32);

fn key_of(reference: &Reference) -> VersionKey {
    (reference.stream.clone(), reference.part, reference.version)
}

impl SchemaIds {
    /// One schema, one fingerprint: the format, the canonical text and,
    /// when it has them, its references (the same text referring to other
    /// versions is another schema).
    fn fingerprint(
        format: SchemaFormat,
        schema: &serde_json::Value,
        references: &[Reference],
    ) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        hash.update(format.as_str().as_bytes());
        hash.update(b"\n");
        // serde_json keeps object keys sorted: the same schema is the same text.
        hash.update(schema.to_string().as_bytes());
        if !references.is_empty() {
            hash.update(b"\nreferences ");
            hash.update(serde_json::to_vec(references).unwrap_or_default());
        }
        hash.finalize().into()
    }

    fn of_version(version: &SchemaVersion) -> [u8; 32] {
        Self::fingerprint(version.format, &version.schema, &version.references)
    }

    /// Records that `referrer` refers to what its references name.
    fn refers(&mut self, referrer: VersionKey, references: &[Reference]) {
        for reference in references {
            self.referrers
                .entry(key_of(reference))
                .or_default()
                .insert(referrer.clone());
        }
    }

    /// Forgets `referrer`'s references (it was deleted permanently).
    fn forget(&mut self, referrer: &VersionKey, references: &[Reference]) {
        for reference in references {
            if let Some(set) = self.referrers.get_mut(&key_of(reference)) {
                set.remove(referrer);
                if set.is_empty() {
                    self.referrers.remove(&key_of(reference));
                }
            }
        }
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
                    .entry(Self::of_version(version))
                    .or_insert(version.id);
            }
        }
        for stream in streams {
            for part in [RecordPart::Value, RecordPart::Key] {
                for version in stream.versions(part) {
                    let key = (stream.name.to_string(), part, version.version);
                    ids.refers(key, &version.references);
                }
            }
        }
        ids
    }

    pub(super) fn id_of(
        &mut self,
        format: SchemaFormat,
        schema: &serde_json::Value,
        references: &[Reference],
    ) -> u32 {
        *self
            .by_fingerprint
            .entry(Self::fingerprint(format, schema, references))
            .or_insert_with(|| {
                self.highest += 1;
                self.highest
            })
    }
}

/// A schema to make a version of: the schema, the references it was
/// registered with and what they resolve to.
#[derive(Debug, Clone, Default)]
pub(super) struct Proposed {
    pub schema: serde_json::Value,
    pub references: Vec<Reference>,
    pub dependencies: Vec<Dependency>,
}

impl Proposed {
    /// A schema that refers to nothing.
    pub fn alone(schema: serde_json::Value) -> Proposed {
        Proposed {
            schema,
            ..Proposed::default()
        }
    }

    fn source(&self) -> Source<'_> {
        Source {
            schema: &self.schema,
            dependencies: &self.dependencies,
        }
    }

    /// Whether `version` is this schema: the same text, referring to the
    /// same versions.
    fn is(&self, format: SchemaFormat, version: &SchemaVersion) -> bool {
        version.format == format
            && version.schema == self.schema
            && version.references == self.references
    }
}

/// The most versions a schema may depend on, directly or not.
const MAX_DEPENDENCIES: usize = 64;

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
            version.id = self.schema_id(version.format, &version.schema, &version.references)?;
        }
        Ok(())
    }

    /// The global id of `schema`: the one it has, or a new one. Call under
    /// the write lock, before what holds it is committed.
    fn schema_id(
        &self,
        format: SchemaFormat,
        schema: &serde_json::Value,
        references: &[Reference],
    ) -> Result<u32, CatalogError> {
        self.with_schema_ids(|ids| ids.id_of(format, schema, references))
    }

    /// `f` on the global schema ids, loaded from the store on first use.
    /// Call under the write lock.
    fn with_schema_ids<T>(&self, f: impl FnOnce(&mut SchemaIds) -> T) -> Result<T, CatalogError> {
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
        Ok(f(ids.as_mut().expect("loaded above")))
    }

    /// `schema` with `references` (for `stream`'s schemas, in `format`) as
    /// a version would keep it: the references resolved, the schema
    /// canonical (see [`freeport_common::schema::canonical`]); refused
    /// with every problem unless it is a well-formed schema with what it
    /// refers to.
    fn propose(
        &self,
        stream: &Stream,
        format: SchemaFormat,
        schema: serde_json::Value,
        references: &[Reference],
    ) -> Result<Proposed, CatalogError> {
        let dependencies = self.resolve_references(stream, format, references)?;
        let schema = freeport_common::schema::canonical(format, schema, &dependencies).map_err(
            |errors| CatalogError::InvalidField(format!("schema {}", errors.join("; schema "))),
        )?;
        Ok(Proposed {
            schema,
            references: references.to_vec(),
            dependencies,
        })
    }

    /// The stream named `name` as a change to `changing` sees it:
    /// `changing` itself (with the change's edits) when it is that stream,
    /// else as stored; `None` when there is no such stream.
    fn stream_as_changed<'a>(
        &self,
        changing: &'a Stream,
        name: &str,
    ) -> Result<Option<Cow<'a, Stream>>, CatalogError> {
        if name == changing.name.as_str() {
            return Ok(Some(Cow::Borrowed(changing)));
        }
        let Ok(name) = StreamName::parse(name) else {
            return Ok(None);
        };
        Ok(self.store.get_stream(&name)?.map(Cow::Owned))
    }

    /// What `references` (of a schema of `format` for `stream`) resolve
    /// to, each after what it depends on in turn: every reference names a
    /// live version of the same owner's stream, in the same format. The
    /// referring stream is `stream` as it is being changed.
    fn resolve_references(
        &self,
        stream: &Stream,
        format: SchemaFormat,
        references: &[Reference],
    ) -> Result<Vec<Dependency>, CatalogError> {
        let dependencies = freeport_common::schema::resolve(references, |reference| {
            let refused = |why: String| {
                CatalogError::InvalidField(format!("references: {:?} {why}", reference.name))
            };
            if reference.name.is_empty() {
                return Err(CatalogError::InvalidField(
                    "references: each needs a name (the type name, $ref or import path the schema uses)".into(),
                ));
            }
            let target = self
                .stream_as_changed(stream, &reference.stream)?
                .ok_or_else(|| refused(format!("names no stream ({})", reference.stream)))?;
            if target.owner != stream.owner {
                return Err(refused(format!(
                    "names stream {}, which belongs to another organization: a schema refers only to its owner's subjects",
                    target.name
                )));
            }
            let version = target
                .versions(reference.part)
                .iter()
                .find(|v| v.version == reference.version && !v.deleted)
                .ok_or_else(|| {
                    refused(format!(
                        "names version {} of stream {}'s {} schema, which it does not have",
                        reference.version,
                        target.name,
                        reference.part.as_str()
                    ))
                })?;
            if version.format != format {
                return Err(refused(format!(
                    "is a {} schema; a {} schema refers only to {} schemas",
                    version.format.as_str(),
                    format.as_str(),
                    format.as_str()
                )));
            }
            Ok((version.schema.clone(), version.dependencies.clone()))
        })?;
        if dependencies.len() > MAX_DEPENDENCIES {
            return Err(CatalogError::InvalidField(format!(
                "references: the schema depends on {} versions; the limit is {MAX_DEPENDENCIES}",
                dependencies.len()
            )));
        }
        Ok(dependencies)
    }

    /// The live versions that refer to `stream`'s `part` versions
    /// `numbers`, as `stream version n` (for a refusal): they keep what
    /// they refer to from being deleted.
    fn live_referrers(
        &self,
        stream: &Stream,
        part: RecordPart,
        numbers: &[u32],
    ) -> Result<Vec<String>, CatalogError> {
        let referrers: Vec<VersionKey> = self.with_schema_ids(|ids| {
            numbers
                .iter()
                .filter_map(|n| ids.referrers.get(&(stream.name.to_string(), part, *n)))
                .flatten()
                .cloned()
                .collect()
        })?;
        let mut live = Vec::new();
        for (name, referrer_part, number) in referrers {
            let is_live = |s: &Stream| {
                s.versions(referrer_part)
                    .iter()
                    .any(|v| v.version == number && !v.deleted)
            };
            if self
                .stream_as_changed(stream, &name)?
                .is_some_and(|s| is_live(&s))
            {
                live.push(format!(
                    "version {number} of stream {name}'s {} schema",
                    referrer_part.as_str()
                ));
            }
        }
        Ok(live)
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
            source.source(),
            &contract.terms,
        )
        .map_err(|why| {
            CatalogError::InvalidField(format!(
                "contract {id}'s terms cannot reshape schema version {}: {why}",
                source.version
            ))
        })?;
        // It refers to what the source does: terms reshape its own fields.
        let delivered = SchemaVersion {
            version: source.version,
            id: self.schema_id(source.format, &schema, &source.references)?,
            format: source.format,
            schema,
            registered_at_ms: now_ms(),
            registered_by: "system:terms".into(),
            deleted: false,
            references: source.references.clone(),
            dependencies: source.dependencies.clone(),
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
        proposed: Proposed,
        actor: &Principal,
        now: i64,
    ) -> Result<Option<SchemaVersion>, CatalogError> {
        if let Some(refusal) = format_change(stream, part, format) {
            return Err(CatalogError::InvalidField(refusal));
        }
        let history = stream.live_versions(part);
        if history
            .last()
            .is_some_and(|latest| proposed.is(format, latest))
        {
            return Ok(None);
        }
        let mode = stream.compatibility_of(part);
        let problems = freeport_common::schema::incompatibilities_with(
            mode,
            format,
            &history,
            proposed.source(),
        );
        if !problems.is_empty() {
            return Err(CatalogError::IncompatibleSchema {
                stream: stream.name.to_string(),
                mode: mode.as_str(),
                problems,
            });
        }
        // Numbers go on past soft-deleted versions, never reusing theirs.
        let number = stream.versions(part).iter().map(|v| v.version).max();
        let Proposed {
            schema,
            references,
            dependencies,
        } = proposed;
        let version = SchemaVersion {
            version: number.map_or(1, |n| n + 1),
            id: self.schema_id(format, &schema, &references)?,
            format,
            schema,
            registered_at_ms: now,
            registered_by: actor.audit_name(),
            deleted: false,
            references,
            dependencies,
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
    ///
    /// `references` name other versions of the owner's streams the schema
    /// uses (Confluent's schema references): each must be live and of the
    /// same format, and is kept from being deleted while this version
    /// lives.
    pub async fn register_schema(
        &self,
        actor: &Principal,
        (name, part): (&StreamName, RecordPart),
        format: SchemaFormat,
        schema: serde_json::Value,
        references: &[Reference],
    ) -> Result<SchemaVersion, CatalogError> {
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
        let proposed = self.propose(&stream, format, schema, references)?;
        // A soft-deleted version's schema registers again, as a new version
        // with the same id (as a schema registry does).
        if let Some(known) = stream
            .live_versions(part)
            .into_iter()
            .find(|v| proposed.is(format, v))
        {
            return Ok(known);
        }
        // A schema the part has not had is always a new version.
        let version = self
            .evolve_schema(&mut stream, part, format, proposed, actor, now_ms())?
            .expect("not the latest: the part has not had it");
        self.commit(Commit::one(Change::Stream(stream.clone()), AuditRecord::new(
                actor.audit_name(),
                "stream.schema_register",
                format!("stream:{}", stream.name),
                json!({"part": part, "version": version.version, "id": version.id, "format": format, "compatibility": stream.compatibility_of(part), "references": version.references}),
            )))
        .await?;
        // Known only once it is: a failed commit leaves nothing behind.
        self.with_schema_ids(|ids| {
            ids.refers(
                (stream.name.to_string(), part, version.version),
                &version.references,
            )
        })?;
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
        references: &[Reference],
    ) -> Result<Vec<String>, CatalogError> {
        let stream = self.get_stream(name)?;
        Self::require_owner(actor, &stream, "check schemas against it")?;
        let format = format.or(stream.format_of(part)).unwrap_or_default();
        let proposed = self.propose(&stream, format, schema.clone(), references)?;
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
            proposed.source(),
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
        let referrers = self.live_referrers(&stream, part, &targets)?;
        if !referrers.is_empty() {
            return Err(CatalogError::SchemaReferenced(format!(
                "{subject} is referred to by {}: delete those first",
                referrers.join(", ")
            )));
        }
        let mut retired = Vec::new();
        let versions = stream.versions_mut(part);
        if permanent {
            let kept;
            (retired, kept) = std::mem::take(versions)
                .into_iter()
                .partition(|v| targets.contains(&v.version));
            *versions = kept;
            stream
                .retired_schemas
                .extend(retired.iter().map(|v| crate::domain::RetiredSchema {
                    id: v.id,
                    fingerprint: hex::encode(SchemaIds::of_version(v)),
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
        self.with_schema_ids(|ids| {
            for gone in &retired {
                ids.forget(
                    &(stream.name.to_string(), part, gone.version),
                    &gone.references,
                );
            }
        })?;
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
