//! The portal's handle on the catalog: a mutual-TLS gRPC client whose
//! errors arrive as [`ApiError`]s carrying the catalog's own codes. Calls
//! made while serving a traced request carry its trace context.

use freeport_common::proto::catalog::v1 as pb;
use freeport_common::telemetry::CatalogCalls;
use pb::catalog_service_client::CatalogServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::error::ApiResult;

#[derive(Clone)]
pub struct CatalogClient {
    inner: CatalogServiceClient<InterceptedService<Channel, CatalogCalls>>,
}

impl CatalogClient {
    pub fn new(channel: Channel) -> CatalogClient {
        CatalogClient {
            inner: CatalogServiceClient::with_interceptor(channel, CatalogCalls)
                .max_decoding_message_size(freeport_common::tls::CATALOG_ANSWER_BYTES),
        }
    }

    fn client(&self) -> CatalogServiceClient<InterceptedService<Channel, CatalogCalls>> {
        self.inner.clone()
    }

    pub async fn create_organization(
        &self,
        request: pb::CreateOrganizationRequest,
    ) -> ApiResult<pb::Organization> {
        Ok(self
            .client()
            .create_organization(request)
            .await?
            .into_inner())
    }

    pub async fn list_organizations(&self) -> ApiResult<Vec<pb::Organization>> {
        let response = self
            .client()
            .list_organizations(pb::ListOrganizationsRequest {})
            .await?;
        Ok(response.into_inner().organizations)
    }

    pub async fn create_api_key(
        &self,
        request: pb::CreateApiKeyRequest,
    ) -> ApiResult<pb::CreateApiKeyResponse> {
        Ok(self.client().create_api_key(request).await?.into_inner())
    }

    /// Every key with its hash, and the revision the list is consistent
    /// with: the services' view.
    pub async fn service_keys(&self) -> ApiResult<(Vec<pb::ApiKey>, u64)> {
        let request = pb::ListApiKeysRequest {
            actor: None,
            organization: String::new(),
        };
        let response = self.client().list_api_keys(request).await?.into_inner();
        Ok((response.keys, response.revision))
    }

    /// The revision of the catalog's last commit.
    pub async fn current_revision(&self) -> ApiResult<u64> {
        let request = pb::CurrentRevisionRequest {};
        Ok(self
            .client()
            .current_revision(request)
            .await?
            .into_inner()
            .revision)
    }

    /// When keys (by hash) were last used here.
    pub async fn record_key_use(
        &self,
        uses: std::collections::HashMap<String, i64>,
    ) -> ApiResult<()> {
        let request = pb::RecordKeyUseRequest {
            uses: uses
                .into_iter()
                .map(|(key_sha256, last_used_ms)| pb::KeyUse {
                    key_sha256,
                    last_used_ms,
                })
                .collect(),
        };
        self.client().record_key_use(request).await?;
        Ok(())
    }

    /// `org`'s keys as `actor` may see them (never their hashes).
    pub async fn list_api_keys(
        &self,
        actor: pb::Principal,
        org: String,
    ) -> ApiResult<Vec<pb::ApiKey>> {
        let request = pb::ListApiKeysRequest {
            actor: Some(actor),
            organization: org,
        };
        Ok(self
            .client()
            .list_api_keys(request)
            .await?
            .into_inner()
            .keys)
    }

    pub async fn revoke_certificate(
        &self,
        request: pb::RevokeCertificateRequest,
    ) -> ApiResult<pb::Organization> {
        Ok(self
            .client()
            .revoke_certificate(request)
            .await?
            .into_inner())
    }

    pub async fn revoke_api_key(&self, request: pb::RevokeApiKeyRequest) -> ApiResult<pb::ApiKey> {
        Ok(self.client().revoke_api_key(request).await?.into_inner())
    }

    pub async fn rotate_api_key(
        &self,
        request: pb::RotateApiKeyRequest,
    ) -> ApiResult<pb::RotateApiKeyResponse> {
        Ok(self.client().rotate_api_key(request).await?.into_inner())
    }

    pub async fn register_stream(
        &self,
        actor: pb::Principal,
        stream: pb::Stream,
    ) -> ApiResult<pb::Stream> {
        let request = pb::RegisterStreamRequest {
            actor: Some(actor),
            stream: Some(stream),
        };
        Ok(self.client().register_stream(request).await?.into_inner())
    }

    pub async fn get_stream(&self, name: &str) -> ApiResult<pb::Stream> {
        let request = pb::GetStreamRequest {
            name: name.to_string(),
            viewer: None,
        };
        Ok(self.client().get_stream(request).await?.into_inner())
    }

    /// A stream as `viewer` may see it: one it may not see is not found.
    pub async fn get_stream_for(&self, name: &str, viewer: pb::Principal) -> ApiResult<pb::Stream> {
        let request = pb::GetStreamRequest {
            name: name.to_string(),
            viewer: Some(viewer),
        };
        Ok(self.client().get_stream(request).await?.into_inner())
    }

    /// The streams `viewer` may discover.
    pub async fn list_streams_for(&self, viewer: pb::Principal) -> ApiResult<Vec<pb::Stream>> {
        let request = pb::ListStreamsRequest {
            viewer: Some(viewer),
        };
        Ok(self
            .client()
            .list_streams(request)
            .await?
            .into_inner()
            .streams)
    }

    /// Every stream, for checks the portal makes on its own behalf.
    pub async fn list_streams(&self) -> ApiResult<Vec<pb::Stream>> {
        let response = self
            .client()
            .list_streams(pb::ListStreamsRequest { viewer: None })
            .await?;
        Ok(response.into_inner().streams)
    }

    pub async fn register_schema(
        &self,
        request: pb::RegisterSchemaRequest,
    ) -> ApiResult<pb::SchemaVersion> {
        Ok(self.client().register_schema(request).await?.into_inner())
    }

    /// What breaks if the schema followed the stream's versions (empty:
    /// nothing); writes nothing.
    pub async fn check_schema(&self, request: pb::CheckSchemaRequest) -> ApiResult<Vec<String>> {
        Ok(self
            .client()
            .check_schema(request)
            .await?
            .into_inner()
            .problems)
    }

    pub async fn delete_schema_versions(
        &self,
        request: pb::DeleteSchemaVersionsRequest,
    ) -> ApiResult<pb::DeleteSchemaVersionsResponse> {
        Ok(self
            .client()
            .delete_schema_versions(request)
            .await?
            .into_inner())
    }

    pub async fn set_validation(&self, request: pb::SetValidationRequest) -> ApiResult<pb::Stream> {
        Ok(self.client().set_validation(request).await?.into_inner())
    }

    pub async fn set_compatibility(
        &self,
        request: pb::SetCompatibilityRequest,
    ) -> ApiResult<pb::Stream> {
        Ok(self.client().set_compatibility(request).await?.into_inner())
    }

    /// Publishes (or, on a dry run, checks) a document. A refusal is
    /// `Ok(Err(problems))`.
    pub async fn publish_asyncapi(
        &self,
        request: pb::PublishAsyncApiRequest,
    ) -> ApiResult<Result<Vec<pb::Stream>, Vec<pb::DocumentProblem>>> {
        let answer = self.client().publish_async_api(request).await?.into_inner();
        Ok(if answer.problems.is_empty() {
            Ok(answer.streams)
        } else {
            Err(answer.problems)
        })
    }

    /// A stream's AsyncAPI document as `viewer` may see it.
    pub async fn stream_asyncapi(
        &self,
        name: &str,
        viewer: pb::Principal,
    ) -> ApiResult<serde_json::Value> {
        let request = pb::GetStreamAsyncApiRequest {
            name: name.to_string(),
            viewer: Some(viewer),
        };
        let generated = self
            .client()
            .get_stream_async_api(request)
            .await?
            .into_inner();
        serde_json::from_str(&generated.document_json).map_err(|e| {
            crate::error::ApiError::internal("the catalog sent an unreadable document", e)
        })
    }

    /// The AsyncAPI document of everything `org` receives.
    /// `org`'s partner document; `portal` (`host[:port]`, and whether it
    /// speaks TLS) is where its push contracts are read.
    pub async fn partner_asyncapi(
        &self,
        org: &str,
        portal: Option<(&str, bool)>,
    ) -> ApiResult<serde_json::Value> {
        let request = pb::GetPartnerAsyncApiRequest {
            organization: org.to_string(),
            portal_host: portal.map(|(host, _)| host.to_string()).unwrap_or_default(),
            portal_secure: portal.is_some_and(|(_, secure)| secure),
        };
        let generated = self
            .client()
            .get_partner_async_api(request)
            .await?
            .into_inner();
        serde_json::from_str(&generated.document_json).map_err(|e| {
            crate::error::ApiError::internal("the catalog sent an unreadable document", e)
        })
    }

    pub async fn asyncapi_documents(&self, owner: String) -> ApiResult<Vec<pb::AsyncApiDocument>> {
        let request = pb::ListAsyncApiDocumentsRequest { owner };
        Ok(self
            .client()
            .list_async_api_documents(request)
            .await?
            .into_inner()
            .documents)
    }

    pub async fn request_contract(
        &self,
        request: pb::RequestContractRequest,
    ) -> ApiResult<pb::Contract> {
        Ok(self.client().request_contract(request).await?.into_inner())
    }

    pub async fn get_contract(&self, id: &str) -> ApiResult<pb::Contract> {
        let request = pb::GetContractRequest { id: id.to_string() };
        Ok(self.client().get_contract(request).await?.into_inner())
    }

    pub async fn list_contracts(&self) -> ApiResult<Vec<pb::Contract>> {
        let response = self
            .client()
            .list_contracts(pb::ListContractsRequest {})
            .await?;
        Ok(response.into_inner().contracts)
    }

    /// The catalog's changes after `revision`, as they are committed.
    pub async fn watch(&self, revision: u64) -> ApiResult<tonic::Streaming<pb::WatchEvent>> {
        let request = pb::WatchRequest {
            after_revision: revision,
        };
        Ok(self.client().watch(request).await?.into_inner())
    }

    pub async fn transition_contract(
        &self,
        request: pb::TransitionContractRequest,
    ) -> ApiResult<pb::Contract> {
        Ok(self
            .client()
            .transition_contract(request)
            .await?
            .into_inner())
    }

    pub async fn audit_trail(&self, entity: String) -> ApiResult<Vec<pb::AuditEntry>> {
        let request = pb::GetAuditTrailRequest { entity };
        Ok(self
            .client()
            .get_audit_trail(request)
            .await?
            .into_inner()
            .entries)
    }
}
