//! Generated protobuf types, tonic clients and servers, and the descriptor set of every
//! API of the platform.
//!
//! # Layout
//!
//! - [`users::v1`], [`orders::v1`]: the service packages, one module per proto package.
//! - [`google::api`], [`google::rpc`]: the vendored Google types the packages use.
//! - [`FILE_DESCRIPTOR_SET`]: every file above, encoded with `--include_imports` and
//!   source info, custom options (`google.api.http`) preserved. Reflection serves it,
//!   the gateway routes from it.
//! - [`descriptor_pool`]: the same, decoded for dynamic messages.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::all,
    clippy::pedantic,
    clippy::unwrap_used,
    missing_debug_implementations,
    reason = "generated code"
)]

use std::sync::OnceLock;

use prost_reflect::DescriptorPool;

/// Encoded `google.protobuf.FileDescriptorSet` of every API file and its imports.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/descriptor_set.bin"));

/// The decoded [`FILE_DESCRIPTOR_SET`], built once per process.
pub fn descriptor_pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        // The bytes were produced by our own build script from files that compiled, so
        // a failure here is a build defect, not a runtime condition.
        #[allow(clippy::expect_used)]
        DescriptorPool::decode(FILE_DESCRIPTOR_SET).expect("embedded descriptor set decodes")
    })
}

pub mod users {
    pub mod v1 {
        tonic::include_proto!("users.v1");
    }
}

pub mod orders {
    pub mod v1 {
        tonic::include_proto!("orders.v1");
    }
}

pub mod google {
    pub mod api {
        tonic::include_proto!("google.api");
    }
    pub mod rpc {
        tonic::include_proto!("google.rpc");
    }
}
