//! Authorization decisions, asked of the Cedar policies in
//! `policies/freeport.cedar`: who may discover a stream, who may decide on
//! contracts, who may read a stream's records. The catalog and the portal
//! load the policies at start (a `policies` file in their config, or the
//! copy built into the binary) and ask [`Authorizer`]; the callers only
//! gather the facts (the organization's kind, whether it holds a live or
//! active contract).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::str::FromStr;

use cedar_policy::{
    Authorizer as Cedar, Context, Decision, Entities, Entity, EntityId, EntityTypeName, EntityUid,
    PolicySet, Request, RestrictedExpression,
};

/// The policies built into the binary: `policies/freeport.cedar`.
pub const DEFAULT_POLICIES: &str = include_str!("../../../policies/freeport.cedar");

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policies {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("invalid Cedar policies{at}: {message}")]
    Parse { at: String, message: String },
}

/// Who asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who<'a> {
    Admin,
    /// A member of an organization of this kind (`internal`, `partner`).
    Org {
        name: &'a str,
        kind: &'a str,
    },
}

/// What is known of a stream.
#[derive(Debug, Clone, Copy)]
pub struct StreamFacts<'a> {
    pub name: &'a str,
    pub owner: &'a str,
    /// `public`, `partner`, `internal` or `restricted`.
    pub classification: &'a str,
}

/// The loaded policies.
pub struct Authorizer {
    policies: PolicySet,
    cedar: Cedar,
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorizer")
            .field("policies", &self.policies.policies().count())
            .finish()
    }
}

impl Default for Authorizer {
    fn default() -> Authorizer {
        Authorizer::from_text(DEFAULT_POLICIES, "built in")
            .unwrap_or_else(|e| unreachable!("the built-in policies are tested: {e}"))
    }
}

fn uid(kind: &str, id: &str) -> EntityUid {
    let kind = EntityTypeName::from_str(kind)
        .unwrap_or_else(|e| unreachable!("entity type {kind} is a constant: {e}"));
    EntityUid::from_type_name_and_id(kind, EntityId::new(id))
}

fn text(value: &str) -> RestrictedExpression {
    RestrictedExpression::new_string(value.to_string())
}

impl Authorizer {
    /// The policies in `path`, or the built-in ones.
    pub fn load(path: Option<&Path>) -> Result<Authorizer, PolicyError> {
        match path {
            None => Ok(Authorizer::default()),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                Authorizer::from_text(&text, &path.display().to_string())
            }
        }
    }

    pub fn from_text(text: &str, origin: &str) -> Result<Authorizer, PolicyError> {
        let policies = PolicySet::from_str(text).map_err(|e| PolicyError::Parse {
            at: format!(" in {origin}"),
            message: e.to_string(),
        })?;
        Ok(Authorizer {
            policies,
            cedar: Cedar::new(),
        })
    }

    fn principal(who: &Who<'_>) -> Entity {
        match who {
            Who::Admin => Entity::new_no_attrs(uid("Freeport::Admin", "admin"), HashSet::new()),
            Who::Org { name, kind } => Entity::new(
                uid("Freeport::Org", name),
                HashMap::from([("name".into(), text(name)), ("kind".into(), text(kind))]),
                HashSet::new(),
            )
            .unwrap_or_else(|e| unreachable!("string attributes are valid: {e}")),
        }
    }

    fn stream(stream: &StreamFacts<'_>) -> Entity {
        Entity::new(
            uid("Freeport::Stream", stream.name),
            HashMap::from([
                ("name".into(), text(stream.name)),
                ("owner".into(), text(stream.owner)),
                ("classification".into(), text(stream.classification)),
            ]),
            HashSet::new(),
        )
        .unwrap_or_else(|e| unreachable!("string attributes are valid: {e}"))
    }

    fn allowed(
        &self,
        who: &Who<'_>,
        action: &str,
        resource: Entity,
        context: &[(&str, bool)],
    ) -> bool {
        let principal = Self::principal(who);
        let request = Request::new(
            principal.uid(),
            uid("Freeport::Action", action),
            resource.uid(),
            Context::from_pairs(
                context
                    .iter()
                    .map(|(k, v)| (k.to_string(), RestrictedExpression::new_bool(*v))),
            )
            .unwrap_or_else(|e| unreachable!("boolean context is valid: {e}")),
            None,
        );
        let Ok(request) = request else {
            return false;
        };
        let Ok(entities) = Entities::from_entities([principal, resource], None) else {
            return false;
        };
        self.cedar
            .is_authorized(&request, &self.policies, &entities)
            .decision()
            == Decision::Allow
    }

    /// May `who` discover `stream`? `live_contract`: it holds a requested,
    /// approved, active or suspended contract on it.
    pub fn may_view_stream(
        &self,
        who: &Who<'_>,
        stream: &StreamFacts<'_>,
        live_contract: bool,
    ) -> bool {
        self.allowed(
            who,
            "view_stream",
            Self::stream(stream),
            &[("live_contract", live_contract)],
        )
    }

    /// May `who` approve, reject, suspend, resume or revoke `contract`?
    pub fn may_decide(&self, who: &Who<'_>, contract: &str) -> bool {
        let resource = Entity::new_no_attrs(uid("Freeport::Contract", contract), HashSet::new());
        self.allowed(who, "decide", resource, &[])
    }

    /// May `who` read `stream`'s records? `active_contract`: it holds an
    /// active contract on it.
    pub fn may_read_records(
        &self,
        who: &Who<'_>,
        stream: &StreamFacts<'_>,
        active_contract: bool,
    ) -> bool {
        self.allowed(
            who,
            "read_records",
            Self::stream(stream),
            &[("active_contract", active_contract)],
        )
    }
}

#[cfg(test)]
mod tests {
    //! The policies on their own, read from `policies/freeport.cedar`.
    use super::*;

    fn policies() -> Authorizer {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies/freeport.cedar");
        Authorizer::load(Some(&path)).expect("policies/freeport.cedar parses")
    }

    const ACME: Who<'static> = Who::Org {
        name: "acme",
        kind: "internal",
    };
    const SALES: Who<'static> = Who::Org {
        name: "sales",
        kind: "internal",
    };
    const GLOBEX: Who<'static> = Who::Org {
        name: "globex",
        kind: "partner",
    };

    fn stream(classification: &str) -> StreamFacts<'_> {
        StreamFacts {
            name: "orders",
            owner: "acme",
            classification,
        }
    }

    #[test]
    fn who_may_see_a_stream_by_classification() {
        let p = policies();
        // (classification, viewer, live contract) -> may view
        let cases = [
            ("public", &GLOBEX, false, true),
            ("partner", &GLOBEX, false, true),
            ("partner", &SALES, false, true),
            ("internal", &SALES, false, true),
            ("internal", &GLOBEX, false, false),
            ("internal", &GLOBEX, true, true),
            ("restricted", &SALES, false, false),
            ("restricted", &GLOBEX, false, false),
            ("restricted", &GLOBEX, true, true),
            ("restricted", &ACME, false, true), // the owner
            ("restricted", &Who::Admin, false, true),
        ];
        for (classification, who, live, expected) in cases {
            assert_eq!(
                p.may_view_stream(who, &stream(classification), live),
                expected,
                "{who:?} viewing a {classification} stream (live contract: {live})"
            );
        }
    }

    #[test]
    fn only_admins_decide_on_contracts() {
        let p = policies();
        assert!(p.may_decide(&Who::Admin, "c1"));
        assert!(!p.may_decide(&ACME, "c1"));
        assert!(!p.may_decide(&GLOBEX, "c1"));
    }

    #[test]
    fn reading_records_needs_an_active_contract_for_that_stream() {
        let p = policies();
        let partner_stream = stream("public");
        assert!(
            !p.may_read_records(&GLOBEX, &partner_stream, false),
            "discovery is not access"
        );
        assert!(p.may_read_records(&GLOBEX, &partner_stream, true));
        assert!(
            p.may_read_records(&ACME, &partner_stream, false),
            "the owner reads its own"
        );
        assert!(
            !p.may_read_records(&SALES, &partner_stream, false),
            "same kind, other org"
        );
        assert!(
            !p.may_read_records(&Who::Admin, &partner_stream, true),
            "admins act for no org"
        );
    }

    #[test]
    fn the_built_in_policies_are_the_file_and_bad_ones_are_refused() {
        let built_in = Authorizer::default();
        assert!(built_in.may_read_records(&GLOBEX, &stream("partner"), true));
        let error = Authorizer::from_text("permit (principal, action, resource) when {", "test")
            .unwrap_err();
        assert!(
            error.to_string().contains("invalid Cedar policies in test"),
            "{error}"
        );
        let none = Authorizer::from_text("", "empty").unwrap();
        assert!(
            !none.may_decide(&Who::Admin, "c1"),
            "nothing permitted is denied"
        );
    }
}
