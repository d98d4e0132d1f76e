//! Shared by the integration tests: descriptor pools compiled from the test protos.

use std::path::PathBuf;

use gateway::routing::{RouteError, RouteMatch, RouteTable};
use http::Method;
use prost_reflect::DescriptorPool;

/// Compiles `files` (relative to `tests/protos`) with their imports, keeping options,
/// with `/proto/vendor` as an include dir for `google/api/*.proto`.
pub(crate) fn pool(files: &[&str]) -> DescriptorPool {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut compiler = protox::Compiler::new([
        manifest.join("tests/protos"),
        manifest.join("../../proto/vendor"),
    ])
    .expect("include dirs exist");
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(files).expect("test protos compile");
    // `encode_file_descriptor_set` keeps the google.api.http option bytes.
    DescriptorPool::decode(compiler.encode_file_descriptor_set().as_slice())
        .expect("descriptor set decodes")
}

/// The route table of `routing.v1.LibraryService`.
pub(crate) fn library() -> RouteTable {
    let pool = pool(&["routing/v1/routing.proto"]);
    let service = pool
        .get_service_by_name("routing.v1.LibraryService")
        .expect("service exists");
    RouteTable::build(&pool, [service]).expect("routes build")
}

/// Builds the table of one service of `conflict/v1/conflict.proto`.
pub(crate) fn conflict_service(name: &str) -> Result<RouteTable, RouteError> {
    let pool = pool(&["conflict/v1/conflict.proto"]);
    let service = pool
        .get_service_by_name(&format!("conflict.v1.{name}"))
        .expect("service exists");
    RouteTable::build(&pool, [service])
}

/// `method path` matches no route at all.
#[track_caller]
pub(crate) fn assert_not_found(table: &RouteTable, method: Method, path: &str) {
    let found = table.find(&method, path);
    assert!(
        matches!(found, RouteMatch::NotFound),
        "{method} {path}: {found:?}"
    );
}

/// `method path` matches a template whose routes take exactly the methods `allowed`.
#[track_caller]
pub(crate) fn assert_not_allowed(
    table: &RouteTable,
    method: Method,
    path: &str,
    allowed: &[Method],
) {
    match table.find(&method, path) {
        RouteMatch::MethodNotAllowed { allowed: got } => {
            assert_eq!(got, allowed, "{method} {path}");
        }
        other => panic!("{method} {path}: expected 405, got {other:?}"),
    }
}
