//! The gRPC adapter: converts between wire and domain types and calls the
//! [`Catalog`]. No rules live here; the conversions are in [`convert`].

mod convert;

use std::pin::Pin;
use std::sync::Arc;

use freeport_common::config::ClusterConfig;
use freeport_common::names::{ClusterName, OrgName, StreamName};
use freeport_common::proto::catalog::v1 as pb;
use futures::{Stream as FuturesStream, StreamExt};
use tonic::{Request, Response, Status};

use crate::domain::{Contact, ContractAction, OrgKind, Role, Stream};
use crate::domain::{LinkStatus, NewContract, OrgDetails};
use crate::error::CatalogError;
use crate::service::Catalog;
use convert::{
    actor, api_key_pb, compatibility_from_pb, created_pb, delivery_from_pb, destination,
    document_pb, event_pb, existing_stream_name, format_from_pb, new_key, new_stream, org_name,
    organization_pb, part_from_pb, principal_pb, references_from_pb, schema_version_pb,
    terms_from_pb,
};
pub use convert::{contract_pb, ownership_pb, stream_pb, verification_pb};

pub struct CatalogGrpc {
    catalog: Arc<Catalog>,
}

impl CatalogGrpc {
    /// A stream as the viewer may see it, or as a service (no viewer) sees it.
    fn stream_for(
        &self,
        name: &StreamName,
        viewer: Option<pb::Principal>,
    ) -> Result<Stream, CatalogError> {
        match viewer {
            Some(viewer) => self.catalog.get_stream_for(name, &actor(Some(viewer))?),
            None => self.catalog.get_stream(name),
        }
    }

    pub fn new(catalog: Arc<Catalog>) -> CatalogGrpc {
        CatalogGrpc { catalog }
    }

    pub fn into_server(self) -> pb::catalog_service_server::CatalogServiceServer<CatalogGrpc> {
        pb::catalog_service_server::CatalogServiceServer::new(self)
            .max_decoding_message_size(4 * 1024 * 1024)
    }
}

type WatchStream = Pin<Box<dyn FuturesStream<Item = Result<pb::WatchEvent, Status>> + Send>>;

#[tonic::async_trait]
impl pb::catalog_service_server::CatalogService for CatalogGrpc {
    async fn authenticate(
        &self,
        request: Request<pb::AuthenticateRequest>,
    ) -> Result<Response<pb::Principal>, Status> {
        let (principal, expires_at_ms) = self
            .catalog
            .authenticate_key(&request.into_inner().api_key)?;
        Ok(Response::new(pb::Principal {
            expires_at_ms: expires_at_ms.unwrap_or(0),
            ..principal_pb(principal)
        }))
    }

    async fn create_organization(
        &self,
        request: Request<pb::CreateOrganizationRequest>,
    ) -> Result<Response<pb::Organization>, Status> {
        let r = request.into_inner();
        let actor = actor(r.actor)?;
        let kind = match pb::OrganizationKind::try_from(r.kind) {
            Ok(pb::OrganizationKind::Internal) => OrgKind::Internal,
            Ok(pb::OrganizationKind::Partner) => OrgKind::Partner,
            _ => {
                return Err(
                    CatalogError::InvalidField("kind must be internal or partner".into()).into(),
                )
            }
        };
        let name = OrgName::parse(r.name).map_err(CatalogError::from)?;
        let org = self
            .catalog
            .create_organization(
                &actor,
                name,
                kind,
                OrgDetails {
                    display_name: r.display_name,
                    contacts: r
                        .contacts
                        .into_iter()
                        .map(|c| Contact {
                            name: c.name,
                            email: c.email,
                        })
                        .collect(),
                    trusted_cert_fingerprints: r.trusted_cert_fingerprints,
                },
            )
            .await?;
        Ok(Response::new(organization_pb(org)))
    }

    async fn list_organizations(
        &self,
        _request: Request<pb::ListOrganizationsRequest>,
    ) -> Result<Response<pb::ListOrganizationsResponse>, Status> {
        let organizations = self
            .catalog
            .list_organizations()?
            .into_iter()
            .map(organization_pb)
            .collect();
        Ok(Response::new(pb::ListOrganizationsResponse {
            organizations,
        }))
    }

    async fn create_api_key(
        &self,
        request: Request<pb::CreateApiKeyRequest>,
    ) -> Result<Response<pb::CreateApiKeyResponse>, Status> {
        let r = request.into_inner();
        let actor = actor(r.actor)?;
        let role = match pb::Role::try_from(r.role) {
            Ok(pb::Role::Admin) => Role::Admin,
            Ok(pb::Role::Member) => Role::Member,
            _ => {
                return Err(
                    CatalogError::InvalidField("role must be admin or member".into()).into(),
                )
            }
        };
        let org = if r.organization.is_empty() {
            None
        } else {
            Some(org_name(r.organization)?)
        };
        let created = self
            .catalog
            .create_api_key(&actor, role, org, new_key(r.name, r.expires_at_ms))
            .await?;
        Ok(Response::new(created_pb(created)))
    }

    async fn revoke_certificate(
        &self,
        request: Request<pb::RevokeCertificateRequest>,
    ) -> Result<Response<pb::Organization>, Status> {
        let r = request.into_inner();
        let actor = actor(r.actor)?;
        let org = org_name(r.organization)?;
        let organization = self
            .catalog
            .revoke_certificate(&actor, &org, &r.fingerprint, r.reason)
            .await?;
        Ok(Response::new(organization_pb(organization)))
    }

    async fn current_revision(
        &self,
        _request: Request<pb::CurrentRevisionRequest>,
    ) -> Result<Response<pb::CurrentRevisionResponse>, Status> {
        Ok(Response::new(pb::CurrentRevisionResponse {
            revision: self.catalog.revision()?,
        }))
    }

    async fn record_key_use(
        &self,
        request: Request<pb::RecordKeyUseRequest>,
    ) -> Result<Response<pb::RecordKeyUseResponse>, Status> {
        let uses = request.into_inner().uses;
        if uses.len() > 100_000 {
            return Err(CatalogError::InvalidField("at most 100000 uses per call".into()).into());
        }
        self.catalog
            .record_key_use(uses.into_iter().map(|u| (u.key_sha256, u.last_used_ms)));
        Ok(Response::new(pb::RecordKeyUseResponse {}))
    }

    async fn list_api_keys(
        &self,
        request: Request<pb::ListApiKeysRequest>,
    ) -> Result<Response<pb::ListApiKeysResponse>, Status> {
        let r = request.into_inner();
        let Some(principal) = r.actor else {
            // The services' view: every key, with hashes.
            let (keys, revision) = self.catalog.all_api_keys().await?;
            return Ok(Response::new(pb::ListApiKeysResponse {
                keys: keys.into_iter().map(|k| api_key_pb(k, true)).collect(),
                revision,
            }));
        };
        let actor = actor(Some(principal))?;
        let org = org_name(r.organization)?;
        let keys = self.catalog.list_api_keys(&actor, &org)?;
        Ok(Response::new(pb::ListApiKeysResponse {
            keys: keys.into_iter().map(|k| api_key_pb(k, false)).collect(),
            revision: 0,
        }))
    }

    async fn revoke_api_key(
        &self,
        request: Request<pb::RevokeApiKeyRequest>,
    ) -> Result<Response<pb::ApiKey>, Status> {
        let r = request.into_inner();
        let actor = actor(r.actor)?;
        let org = org_name(r.organization)?;
        let revoked = self
            .catalog
            .revoke_api_key(&actor, &org, &r.key_id, r.reason)
            .await?;
        Ok(Response::new(api_key_pb(revoked, false)))
    }

    async fn rotate_api_key(
        &self,
        request: Request<pb::RotateApiKeyRequest>,
    ) -> Result<Response<pb::RotateApiKeyResponse>, Status> {
        let r = request.into_inner();
        let actor = actor(r.actor)?;
        let org = org_name(r.organization)?;
        let (record, key, replaced) = self
            .catalog
            .rotate_api_key(
                &actor,
                &org,
                &r.key_id,
                r.overlap_ms,
                new_key(r.name, r.expires_at_ms),
            )
            .await?;
        Ok(Response::new(pb::RotateApiKeyResponse {
            created: Some(created_pb((record, key))),
            replaced: Some(api_key_pb(replaced, false)),
        }))
    }

    async fn register_stream(
        &self,
        request: Request<pb::RegisterStreamRequest>,
    ) -> Result<Response<pb::Stream>, Status> {
        let r = request.into_inner();
        let actor = actor(r.actor)?;
        // An admin names the organization it registers the stream for.
        let owner = match r.stream.as_ref().map(|s| s.owner.as_str()) {
            None | Some("") => None,
            Some(owner) => Some(OrgName::parse(owner).map_err(CatalogError::from)?),
        };
        let stream = self
            .catalog
            .register_stream_for(&actor, owner, new_stream(r.stream)?)
            .await?;
        Ok(Response::new(stream_pb(stream)))
    }

    async fn get_stream(
        &self,
        request: Request<pb::GetStreamRequest>,
    ) -> Result<Response<pb::Stream>, Status> {
        let r = request.into_inner();
        let name = existing_stream_name(&r.name)?;
        let stream = self.stream_for(&name, r.viewer)?;
        Ok(Response::new(stream_pb(stream)))
    }

    async fn list_streams(
        &self,
        request: Request<pb::ListStreamsRequest>,
    ) -> Result<Response<pb::ListStreamsResponse>, Status> {
        let streams = match request.into_inner().viewer {
            Some(viewer) => self.catalog.list_streams_for(&actor(Some(viewer))?)?,
            None => self.catalog.list_streams()?,
        };
        let streams = streams.into_iter().map(stream_pb).collect();
        Ok(Response::new(pb::ListStreamsResponse { streams }))
    }

    async fn register_schema(
        &self,
        request: Request<pb::RegisterSchemaRequest>,
    ) -> Result<Response<pb::SchemaVersion>, Status> {
        let r = request.into_inner();
        let actor = actor(r.actor)?;
        let name = existing_stream_name(&r.stream)?;
        let schema = serde_json::from_str(&r.schema_json)
            .map_err(|e| CatalogError::InvalidField(format!("schema is not valid JSON: {e}")))?;
        let part = part_from_pb(r.part)?;
        // Unspecified: the part's own format (JSON Schema for a first key).
        let format = match format_from_pb(r.format)? {
            Some(format) => format,
            None => self
                .catalog
                .get_stream(&name)?
                .format_of(part)
                .unwrap_or_default(),
        };
        let version = self
            .catalog
            .register_schema(
                &actor,
                (&name, part),
                format,
                schema,
                &references_from_pb(r.references)?,
            )
            .await?;
        Ok(Response::new(schema_version_pb(version)))
    }

    async fn check_schema(
        &self,
        request: Request<pb::CheckSchemaRequest>,
    ) -> Result<Response<pb::CheckSchemaResponse>, Status> {
        let r = request.into_inner();
        let actor = actor(r.actor)?;
        let name = existing_stream_name(&r.stream)?;
        let schema = serde_json::from_str(&r.schema_json)
            .map_err(|e| CatalogError::InvalidField(format!("schema is not valid JSON: {e}")))?;
        let problems = self.catalog.check_schema(
            &actor,
            (&name, part_from_pb(r.part)?),
            format_from_pb(r.format)?,
            &schema,
            (r.version != 0).then_some(r.version),
            &references_from_pb(r.references)?,
        )?;
        Ok(Response::new(pb::CheckSchemaResponse { problems }))
    }

    async fn delete_schema_versions(
        &self,
        request: Request<pb::DeleteSchemaVersionsRequest>,
    ) -> Result<Response<pb::DeleteSchemaVersionsResponse>, Status> {
        let r = request.into_inner();
        let actor = actor(r.actor)?;
        let name = existing_stream_name(&r.stream)?;
        let (versions, stream) = self
            .catalog
            .delete_schema_versions(
                &actor,
                (&name, part_from_pb(r.part)?),
                (r.version != 0).then_some(r.version),
                r.permanent,
            )
            .await?;
        Ok(Response::new(pb::DeleteSchemaVersionsResponse {
            versions,
            stream: Some(stream_pb(stream)),
        }))
    }

    async fn set_validation(
        &self,
        request: Request<pb::SetValidationRequest>,
    ) -> Result<Response<pb::Stream>, Status> {
        let r = request.into_inner();
        let actor = actor(r.actor)?;
        let name = existing_stream_name(&r.stream)?;
        let stream = self
            .catalog
            .set_validation(&actor, &name, r.enabled)
            .await?;
        Ok(Response::new(stream_pb(stream)))
    }

    async fn set_compatibility(
        &self,
        request: Request<pb::SetCompatibilityRequest>,
    ) -> Result<Response<pb::Stream>, Status> {
        let r = request.into_inner();
        let actor = actor(r.actor)?;
        let name = existing_stream_name(&r.stream)?;
        let mode = compatibility_from_pb(r.compatibility)?
            .ok_or_else(|| CatalogError::InvalidField("compatibility is required".into()))?;
        let stream = self
            .catalog
            .set_compatibility(&actor, (&name, part_from_pb(r.part)?), mode)
            .await?;
        Ok(Response::new(stream_pb(stream)))
    }

    async fn publish_async_api(
        &self,
        request: Request<pb::PublishAsyncApiRequest>,
    ) -> Result<Response<pb::PublishAsyncApiResponse>, Status> {
        let r = request.into_inner();
        let actor = actor(r.actor)?;
        let outcome = self
            .catalog
            .publish_asyncapi(&actor, &r.document, r.dry_run)
            .await?;
        Ok(Response::new(match outcome {
            Ok(streams) => pb::PublishAsyncApiResponse {
                streams: streams.into_iter().map(stream_pb).collect(),
                problems: vec![],
            },
            Err(problems) => pb::PublishAsyncApiResponse {
                streams: vec![],
                problems: problems
                    .into_iter()
                    .map(|p| pb::DocumentProblem {
                        pointer: p.pointer,
                        message: p.message,
                    })
                    .collect(),
            },
        }))
    }

    async fn get_stream_async_api(
        &self,
        request: Request<pb::GetStreamAsyncApiRequest>,
    ) -> Result<Response<pb::GeneratedAsyncApi>, Status> {
        let r = request.into_inner();
        let name = existing_stream_name(&r.name)?;
        let stream = self.stream_for(&name, r.viewer)?;
        let cluster = self
            .catalog
            .clusters()
            .get(&stream.cluster)
            .cloned()
            .unwrap_or_else(|| ClusterConfig {
                description: format!("cluster {} is no longer configured", stream.cluster),
                ..ClusterConfig::plaintext("")
            });
        let partitions = (stream.partitions > 0).then_some(stream.partitions as usize);
        let document = crate::asyncapi::stream_document(&stream_pb(stream), &cluster, partitions);
        Ok(Response::new(pb::GeneratedAsyncApi {
            document_json: document.to_string(),
        }))
    }

    async fn get_partner_async_api(
        &self,
        request: Request<pb::GetPartnerAsyncApiRequest>,
    ) -> Result<Response<pb::GeneratedAsyncApi>, Status> {
        let r = request.into_inner();
        let org = r.organization.clone();
        let known = self
            .catalog
            .list_organizations()?
            .into_iter()
            .any(|o| o.name.as_str() == org);
        if !known {
            return Err(CatalogError::OrganizationNotFound(org.chars().take(80).collect()).into());
        }
        let (contracts, _) = self.catalog.list_contracts().await?;
        let contracts: Vec<pb::Contract> = contracts
            .into_iter()
            .filter(|c| c.consumer.as_str() == org && c.state.is_flowing())
            .map(contract_pb)
            .collect();
        let streams: Vec<pb::Stream> = self
            .catalog
            .list_streams()?
            .into_iter()
            .map(stream_pb)
            .collect();
        let clusters = self.catalog.clusters();
        let deliveries: Vec<crate::asyncapi::Delivery<'_>> = contracts
            .iter()
            .filter_map(|contract| {
                let stream = streams.iter().find(|s| s.name == contract.stream)?;
                // A push contract has no cluster: it is read from the portal.
                let destination = match &contract.destination {
                    None => None,
                    Some(d) => Some(clusters.get(&ClusterName::parse(d.cluster.clone()).ok()?)?),
                };
                Some(crate::asyncapi::Delivery {
                    contract,
                    stream,
                    destination,
                })
            })
            .collect();
        let portal = (!r.portal_host.is_empty()).then(|| crate::asyncapi::Portal {
            host: &r.portal_host,
            secure: r.portal_secure,
        });
        let document = crate::asyncapi::partner_document(&org, &deliveries, portal);
        Ok(Response::new(pb::GeneratedAsyncApi {
            document_json: document.to_string(),
        }))
    }

    async fn list_async_api_documents(
        &self,
        request: Request<pb::ListAsyncApiDocumentsRequest>,
    ) -> Result<Response<pb::ListAsyncApiDocumentsResponse>, Status> {
        let owner = request.into_inner().owner;
        let documents = self
            .catalog
            .list_documents()?
            .into_iter()
            .filter(|d| owner.is_empty() || d.owner.as_str() == owner)
            .map(document_pb)
            .collect();
        Ok(Response::new(pb::ListAsyncApiDocumentsResponse {
            documents,
        }))
    }

    async fn request_contract(
        &self,
        request: Request<pb::RequestContractRequest>,
    ) -> Result<Response<pb::Contract>, Status> {
        let r = request.into_inner();
        let actor = actor(r.actor)?;
        let new = NewContract {
            stream: StreamName::parse(r.stream).map_err(CatalogError::from)?,
            purpose: r.purpose,
            delivery: delivery_from_pb(r.delivery)?,
            destination: destination(r.destination)?,
            terms: terms_from_pb(r.terms)?,
        };
        let contract = self.catalog.request_contract(&actor, new).await?;
        Ok(Response::new(contract_pb(contract)))
    }

    async fn get_contract(
        &self,
        request: Request<pb::GetContractRequest>,
    ) -> Result<Response<pb::Contract>, Status> {
        let contract = self.catalog.get_contract(&request.into_inner().id)?;
        Ok(Response::new(contract_pb(contract)))
    }

    async fn list_contracts(
        &self,
        _request: Request<pb::ListContractsRequest>,
    ) -> Result<Response<pb::ListContractsResponse>, Status> {
        let (contracts, revision) = self.catalog.list_contracts().await?;
        Ok(Response::new(pb::ListContractsResponse {
            contracts: contracts.into_iter().map(contract_pb).collect(),
            revision,
        }))
    }

    async fn transition_contract(
        &self,
        request: Request<pb::TransitionContractRequest>,
    ) -> Result<Response<pb::Contract>, Status> {
        let r = request.into_inner();
        let actor = actor(r.actor)?;
        let action = match pb::ContractAction::try_from(r.action) {
            Ok(pb::ContractAction::Approve) => ContractAction::Approve,
            Ok(pb::ContractAction::Reject) => ContractAction::Reject,
            Ok(pb::ContractAction::Revoke) => ContractAction::Revoke,
            Ok(pb::ContractAction::Suspend) => ContractAction::Suspend,
            Ok(pb::ContractAction::Resume) => ContractAction::Resume,
            _ => return Err(CatalogError::InvalidField("unknown contract action".into()).into()),
        };
        let terms = r.terms.map(|t| terms_from_pb(Some(t))).transpose()?;
        let contract = self
            .catalog
            .transition_contract(&actor, &r.id, action, r.reason, terms)
            .await?;
        Ok(Response::new(contract_pb(contract)))
    }

    async fn report_link_status(
        &self,
        request: Request<pb::ReportLinkStatusRequest>,
    ) -> Result<Response<pb::Contract>, Status> {
        let r = request.into_inner();
        let status = match pb::LinkStatus::try_from(r.status) {
            Ok(pb::LinkStatus::Running) => LinkStatus::Running,
            Ok(pb::LinkStatus::Stopped) => LinkStatus::Stopped,
            Ok(pb::LinkStatus::Error) => LinkStatus::Error,
            Ok(pb::LinkStatus::Stalled) => LinkStatus::Stalled,
            _ => return Err(CatalogError::InvalidField("unknown link status".into()).into()),
        };
        let contract = self
            .catalog
            .report_link_status(&r.contract_id, status, &r.detail)
            .await?;
        Ok(Response::new(contract_pb(contract)))
    }

    async fn delivered_schema(
        &self,
        request: Request<pb::DeliveredSchemaRequest>,
    ) -> Result<Response<pb::DeliveredSchemaResponse>, Status> {
        let r = request.into_inner();
        let (source, delivered) = self
            .catalog
            .delivered_schema(&r.contract_id, r.source_schema_id)
            .await?;
        Ok(Response::new(pb::DeliveredSchemaResponse {
            source: Some(schema_version_pb(source)),
            delivered: Some(schema_version_pb(delivered)),
        }))
    }

    async fn share_links(
        &self,
        request: Request<pb::ShareLinksRequest>,
    ) -> Result<Response<pb::ShareLinksResponse>, Status> {
        let r = request.into_inner();
        let (share, lease) = self.catalog.share_links(
            &r.member,
            &r.wanted.into_iter().collect(),
            &r.held.into_iter().collect(),
        )?;
        Ok(Response::new(pb::ShareLinksResponse {
            assigned: share.assigned,
            lease_ms: u32::try_from(lease.as_millis()).unwrap_or(u32::MAX),
            members: share.members,
        }))
    }

    async fn get_audit_trail(
        &self,
        request: Request<pb::GetAuditTrailRequest>,
    ) -> Result<Response<pb::GetAuditTrailResponse>, Status> {
        let entity = request.into_inner().entity;
        let entries = self
            .catalog
            .audit_trail(&entity)?
            .into_iter()
            .map(|e| pb::AuditEntry {
                seq: e.seq,
                actor: e.record.actor,
                action: e.record.action,
                entity: e.record.entity,
                detail_json: e.record.detail.to_string(),
                at_ms: e.record.at_ms,
                prev_hash: e.prev_hash,
                hash: e.hash,
            })
            .collect();
        Ok(Response::new(pb::GetAuditTrailResponse { entries }))
    }

    async fn verify_audit(
        &self,
        _request: Request<pb::VerifyAuditRequest>,
    ) -> Result<Response<pb::VerifyAuditResponse>, Status> {
        Ok(Response::new(verification_pb(self.catalog.verify_audit()?)))
    }

    async fn check_ownership(
        &self,
        _request: Request<pb::CheckOwnershipRequest>,
    ) -> Result<Response<pb::CheckOwnershipResponse>, Status> {
        Ok(Response::new(ownership_pb(
            self.catalog.ownership_problems()?,
        )))
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let after = request.into_inner().after_revision;
        let stream = self
            .catalog
            .watch(after)
            .map(|item| item.map(event_pb).map_err(Status::from));
        Ok(Response::new(Box::pin(stream)))
    }
}
