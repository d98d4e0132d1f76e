//! Request validation by the rules declared in the protos: protovalidate's
//! `buf.validate` annotations (`(buf.validate.field).string.min_len = 1`, ...), read
//! from the descriptors at run time and checked against any message, typed (the
//! services' generated types) or dynamic (the gateway's, from any team's descriptor
//! set). A violation is a [`FieldViolation`] with the field's path as the services have
//! always named it (`email`, `items[0].quantity`), so a refusal is the same
//! INVALID_ARGUMENT with a `google.rpc.BadRequest` wherever it is made.
//!
//! # Why this evaluator, not the `prost-protovalidate` crate
//!
//! `prost-protovalidate` (0.6) evaluates these rules over prost-reflect, CEL included,
//! but it depends on `prost-protovalidate-types`, whose build script compiles
//! `validate.proto` with `prost_build::compile_protos`, which runs a system `protoc`
//! whatever the features (`reflect` on or off; the only knob, `PROTOC`, just says
//! where that binary is): a clean build here fails with "Could not find `protoc`".
//! The platform builds with protox alone (no `protoc` on CI or in the image). No other
//! maintained crate evaluates `buf.validate` (`prost-reflect-validate` implements the
//! older protoc-gen-validate rules, `validate.rules`). Patching the types crate with a
//! protox build script would mean carrying a fork of it, and pulling a CEL interpreter
//! and an ANTLR runtime into every service for rules the platform does not use.
//!
//! So the standard rules are evaluated here, over prost-reflect dynamic messages,
//! reading the `buf.validate.field` / `.message` / `.oneof` options from the
//! descriptor pool (see [`plan`] for exactly which). Semantics and messages follow
//! protovalidate's: a field with presence (a message, `optional`, a oneof member) is
//! checked only when set; an implicit-presence scalar is checked even at its zero
//! value unless `ignore = IGNORE_IF_ZERO_VALUE`; `required` means set (non-zero,
//! non-empty); nested messages are validated in turn. A rule this evaluator does not
//! know (CEL expressions, `hostname`, `timestamp` rules...) is not silently taken for
//! a pass: [`Validator::unsupported`] lists them so the gateway can say at start which
//! rules it leaves to the service behind it, and the platform's own protos are tested
//! to use none.
//!
//! Checks that no rule can express stay in the services' domain code (a password's
//! strength, an email's normalisation, an order total that must not overflow).

mod eval;
pub mod plan;
mod text;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor};
use tonic::Status;

use crate::{FieldViolation, InvalidRequest};

use plan::Plan;

/// A rule declared in a descriptor that this evaluator does not check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    /// The full name of the field, message or oneof that declares it.
    pub element: String,
    /// The rule, as declared (`cel`, `string.hostname`, ...), and why when it is
    /// malformed.
    pub rule: String,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.element, self.rule)
    }
}

/// Why a message could not be checked, or why it fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// The message breaks one or more rules.
    #[error(transparent)]
    Invalid(#[from] InvalidRequest),
    /// The message's type is not in the validator's pool, or its bytes do not decode
    /// as that type: a defect of the caller, not of the request.
    #[error("cannot validate {message}: {reason}")]
    Unchecked {
        /// The message's full name.
        message: String,
        /// What went wrong.
        reason: String,
    },
}

impl From<CheckError> for Status {
    fn from(error: CheckError) -> Self {
        match error {
            CheckError::Invalid(invalid) => invalid.into(),
            unchecked @ CheckError::Unchecked { .. } => crate::internal(&unchecked),
        }
    }
}

/// Checks messages against the `buf.validate` rules of their descriptors. The rules
/// of each message type are read from its descriptor once and kept; clones share
/// them.
#[derive(Debug, Clone)]
pub struct Validator {
    pool: DescriptorPool,
    plans: Arc<RwLock<HashMap<String, Arc<Plan>>>>,
}

impl Validator {
    /// A validator for the messages of `pool` (typed messages are looked up there by
    /// name; dynamic messages carry their own descriptor).
    pub fn new(pool: DescriptorPool) -> Self {
        Self {
            pool,
            plans: Arc::default(),
        }
    }

    /// Checks a generated message, found in the pool by its full name.
    pub fn check<M: prost::Message + prost::Name>(&self, message: &M) -> Result<(), CheckError> {
        let name = M::full_name();
        let unchecked = |reason: String| CheckError::Unchecked {
            message: name.clone(),
            reason,
        };
        let desc = self
            .pool
            .get_message_by_name(&name)
            .ok_or_else(|| unchecked("not in the descriptor pool".to_owned()))?;
        let dynamic = DynamicMessage::decode(desc, message.encode_to_vec().as_slice())
            .map_err(|e| unchecked(e.to_string()))?;
        self.check_dynamic(&dynamic)
    }

    /// Checks a dynamic message.
    pub fn check_dynamic(&self, message: &DynamicMessage) -> Result<(), CheckError> {
        let violations = self.violations(message);
        if violations.is_empty() {
            Ok(())
        } else {
            Err(InvalidRequest::from(violations).into())
        }
    }

    /// Every violation of `message`, in field order, nested messages after the field
    /// that holds them.
    pub fn violations(&self, message: &DynamicMessage) -> Vec<FieldViolation> {
        let mut out = Vec::new();
        eval::message(self, message, "", &mut out);
        out
    }

    /// The fields of `desc` that a message must carry: those whose absence (an
    /// unset field, a zero or empty value) breaks a rule, by proto name.
    pub fn required_fields(&self, desc: &MessageDescriptor) -> Vec<String> {
        let mut names: Vec<String> = self
            .violations(&DynamicMessage::new(desc.clone()))
            .into_iter()
            .filter_map(|v| {
                let top = v.field.split(['.', '[']).next()?;
                desc.get_field_by_name(top).map(|f| f.name().to_owned())
            })
            .collect();
        names.dedup();
        names
    }

    /// The rules declared on `desc` and every message reachable from it that this
    /// evaluator does not check.
    pub fn unsupported(&self, desc: &MessageDescriptor) -> Vec<Unsupported> {
        let mut seen = Vec::new();
        let mut pending = vec![desc.clone()];
        let mut out = Vec::new();
        while let Some(desc) = pending.pop() {
            if seen.contains(&desc) {
                continue;
            }
            let plan = self.plan(&desc);
            out.extend(plan.unsupported.iter().cloned());
            pending.extend(plan.nested.iter().cloned());
            seen.push(desc);
        }
        out
    }

    /// The compiled rules of `desc`, read once.
    fn plan(&self, desc: &MessageDescriptor) -> Arc<Plan> {
        let name = desc.full_name();
        if let Ok(plans) = self.plans.read()
            && let Some(plan) = plans.get(name)
            && plan.desc == *desc
        {
            return Arc::clone(plan);
        }
        let plan = Arc::new(Plan::compile(desc));
        // A message of another pool under the same name is compiled each time rather
        // than evicting this pool's.
        if let Ok(mut plans) = self.plans.write() {
            let entry = plans
                .entry(name.to_owned())
                .or_insert_with(|| Arc::clone(&plan));
            if entry.desc == *desc {
                return Arc::clone(entry);
            }
        }
        plan
    }
}

#[cfg(test)]
mod tests;
