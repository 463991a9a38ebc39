//! A contract's vocabulary to and from the catalog's wire types: the one
//! place that maps states, terms and filter operations onto proto.

use super::{ContractState, ContractTerms, Delivery, FilterOp, RowCondition};
use crate::proto::catalog::v1 as pb;

impl ContractState {
    pub fn to_pb(self) -> pb::ContractState {
        match self {
            ContractState::Requested => pb::ContractState::Requested,
            ContractState::Approved => pb::ContractState::Approved,
            ContractState::Active => pb::ContractState::Active,
            ContractState::Suspended => pb::ContractState::Suspended,
            ContractState::Rejected => pb::ContractState::Rejected,
            ContractState::Revoked => pb::ContractState::Revoked,
            ContractState::Expired => pb::ContractState::Expired,
        }
    }

    /// The state a wire value names; `None` for unspecified or unknown.
    pub fn from_pb(value: i32) -> Option<ContractState> {
        Some(match pb::ContractState::try_from(value).ok()? {
            pb::ContractState::Unspecified => return None,
            pb::ContractState::Requested => ContractState::Requested,
            pb::ContractState::Approved => ContractState::Approved,
            pb::ContractState::Active => ContractState::Active,
            pb::ContractState::Suspended => ContractState::Suspended,
            pb::ContractState::Rejected => ContractState::Rejected,
            pb::ContractState::Revoked => ContractState::Revoked,
            pb::ContractState::Expired => ContractState::Expired,
        })
    }
}

impl Delivery {
    pub fn to_pb(self) -> pb::DeliveryKind {
        match self {
            Delivery::Kafka => pb::DeliveryKind::Kafka,
            Delivery::Push => pb::DeliveryKind::Push,
        }
    }

    /// The kind a wire value names: unspecified is `kafka` (what every
    /// contract was before kinds); `None` for an unknown value.
    pub fn from_pb(value: i32) -> Option<Delivery> {
        Some(match pb::DeliveryKind::try_from(value).ok()? {
            pb::DeliveryKind::Unspecified | pb::DeliveryKind::Kafka => Delivery::Kafka,
            pb::DeliveryKind::Push => Delivery::Push,
        })
    }
}

impl FilterOp {
    pub fn to_pb(self) -> pb::FilterOp {
        match self {
            FilterOp::Eq => pb::FilterOp::Eq,
            FilterOp::Ne => pb::FilterOp::Ne,
            FilterOp::Lt => pb::FilterOp::Lt,
            FilterOp::Lte => pb::FilterOp::Lte,
            FilterOp::Gt => pb::FilterOp::Gt,
            FilterOp::Gte => pb::FilterOp::Gte,
            FilterOp::In => pb::FilterOp::In,
        }
    }

    /// The operation a wire value names; `None` for unspecified or unknown.
    pub fn from_pb(value: i32) -> Option<FilterOp> {
        Some(match pb::FilterOp::try_from(value).ok()? {
            pb::FilterOp::Unspecified => return None,
            pb::FilterOp::Eq => FilterOp::Eq,
            pb::FilterOp::Ne => FilterOp::Ne,
            pb::FilterOp::Lt => FilterOp::Lt,
            pb::FilterOp::Lte => FilterOp::Lte,
            pb::FilterOp::Gt => FilterOp::Gt,
            pb::FilterOp::Gte => FilterOp::Gte,
            pb::FilterOp::In => FilterOp::In,
        })
    }
}

impl ContractTerms {
    pub fn to_pb(&self) -> pb::ContractTerms {
        pb::ContractTerms {
            drop_fields: self.drop_fields.clone(),
            mask_fields: self.mask_fields.clone(),
            hash_fields: self.hash_fields.clone(),
            row_filter: self
                .row_filter
                .iter()
                .map(|c| pb::RowCondition {
                    field: c.field.clone(),
                    op: c.op.to_pb().into(),
                    value_json: c.value.to_string(),
                })
                .collect(),
            end_time_ms: self.end_time_ms.unwrap_or(0),
            max_records_per_second: self.max_records_per_second.unwrap_or(0),
            consumer_groups: self.consumer_groups.clone(),
        }
    }

    /// The terms on the wire (absent: none); what is wrong with them, naming
    /// the condition, when an operation or a value cannot be read. Zero end
    /// time and rate mean "none", as proto3 writes an absent number.
    pub fn from_pb(terms: Option<&pb::ContractTerms>) -> Result<ContractTerms, String> {
        let Some(t) = terms else {
            return Ok(ContractTerms::default());
        };
        let row_filter = t
            .row_filter
            .iter()
            .enumerate()
            .map(|(i, c)| {
                Ok(RowCondition {
                    field: c.field.clone(),
                    op: FilterOp::from_pb(c.op)
                        .ok_or_else(|| format!("row_filter[{i}]: unknown operator"))?,
                    value: serde_json::from_str(&c.value_json)
                        .map_err(|e| format!("row_filter[{i}].value is not JSON: {e}"))?,
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(ContractTerms {
            drop_fields: t.drop_fields.clone(),
            mask_fields: t.mask_fields.clone(),
            hash_fields: t.hash_fields.clone(),
            row_filter,
            end_time_ms: (t.end_time_ms != 0).then_some(t.end_time_ms),
            max_records_per_second: (t.max_records_per_second != 0)
                .then_some(t.max_records_per_second),
            consumer_groups: t.consumer_groups.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_state_and_operation_survives_the_wire() {
        for state in ContractState::ALL {
            assert_eq!(ContractState::from_pb(state.to_pb().into()), Some(state));
            assert_eq!(ContractState::parse(state.as_str()), Some(state));
        }
        assert_eq!(ContractState::from_pb(0), None);
        assert_eq!(ContractState::from_pb(99), None);
        for op in [
            FilterOp::Eq,
            FilterOp::Ne,
            FilterOp::Lt,
            FilterOp::Lte,
            FilterOp::Gt,
            FilterOp::Gte,
            FilterOp::In,
        ] {
            assert_eq!(FilterOp::from_pb(op.to_pb().into()), Some(op));
            assert_eq!(FilterOp::parse(op.as_str()), Some(op));
        }
        assert_eq!(FilterOp::from_pb(0), None);
    }

    #[test]
    fn terms_survive_the_wire() {
        let terms = ContractTerms {
            drop_fields: vec!["/a".into()],
            mask_fields: vec!["/b".into()],
            hash_fields: vec!["/c".into()],
            row_filter: vec![RowCondition {
                field: "/d".into(),
                op: FilterOp::In,
                value: json!(["x", 1]),
            }],
            end_time_ms: Some(5),
            max_records_per_second: Some(7),
            consumer_groups: vec!["g".into()],
        };
        assert_eq!(ContractTerms::from_pb(Some(&terms.to_pb())), Ok(terms));
        assert_eq!(ContractTerms::from_pb(None), Ok(ContractTerms::default()));
        let mut bad = ContractTerms::default().to_pb();
        bad.row_filter.push(pb::RowCondition {
            field: "/x".into(),
            op: 0,
            value_json: "1".into(),
        });
        assert_eq!(
            ContractTerms::from_pb(Some(&bad)),
            Err("row_filter[0]: unknown operator".into())
        );
    }
}
