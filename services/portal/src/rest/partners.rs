//! What a partner receives, as one AsyncAPI document.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use freeport_common::error::ErrorCode;
use freeport_common::names::ClusterName;
use freeport_common::proto::catalog::v1 as pb;

use crate::asyncapi::{partner_document, Delivery};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiPath, Caller};
use crate::AppState;

/// `GET /v1/partners/{org}/asyncapi`: every stream `org` receives under an
/// approved or active contract, with where it arrives. For the organization
/// itself and admins.
pub async fn asyncapi(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(org): ApiPath<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    if !caller.is_admin() && caller.org() != Some(org.as_str()) {
        return Err(ApiError::new(
            ErrorCode::OrganizationNotFound,
            format!("organization {org:?} not found"),
        ));
    }
    let flowing = [
        pb::ContractState::Approved as i32,
        pb::ContractState::Active as i32,
    ];
    let contracts: Vec<pb::Contract> = state
        .catalog()
        .list_contracts()
        .await?
        .into_iter()
        .filter(|c| c.consumer == org && flowing.contains(&c.state))
        .collect();
    let streams = state.catalog().list_streams().await?;
    let deliveries: Vec<Delivery<'_>> = contracts
        .iter()
        .filter_map(|contract| {
            let stream = streams.iter().find(|s| s.name == contract.stream)?;
            let cluster =
                ClusterName::parse(contract.destination.as_ref()?.cluster.clone()).ok()?;
            let destination = state.clusters().get(&cluster)?;
            Some(Delivery {
                contract,
                stream,
                destination,
            })
        })
        .collect();
    super::asyncapi_response(partner_document(&org, &deliveries), &headers)
}
