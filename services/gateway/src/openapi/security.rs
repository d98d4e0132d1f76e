//! The bearer security scheme, and what it adds to an operation that is not public:
//! the requirement and the `401` response a missing or rejected token gets.

use openapiv3::{
    Header, HeaderStyle, Operation, ParameterSchemaOrContent, ReferenceOr, SecurityRequirement,
    SecurityScheme, StatusCode,
};

use super::paths::error_response;
use super::schemas::{string, typed};

/// The name of the bearer security scheme in `components.securitySchemes`.
pub const BEARER_SCHEME: &str = "bearer";

/// `components.securitySchemes.bearer`: a JWT in the `Authorization` header.
pub(super) fn bearer_scheme() -> SecurityScheme {
    SecurityScheme::HTTP {
        scheme: "bearer".to_owned(),
        bearer_format: Some("JWT".to_owned()),
        description: Some(
            "An access token from `POST /v1/auth/token`, sent as \
             `Authorization: Bearer <token>`."
                .to_owned(),
        ),
        extensions: Default::default(),
    }
}

/// Requires the bearer scheme for `operation`, which may then be refused with `401`.
pub(super) fn require_bearer(operation: &mut Operation) {
    let requirement: SecurityRequirement = [(BEARER_SCHEME.to_owned(), Vec::new())]
        .into_iter()
        .collect();
    operation.security = Some(vec![requirement]);

    let mut unauthorized = error_response(
        "The access token is missing, malformed, expired, or not signed by a current key.",
    );
    let challenge = Header {
        description: Some("The scheme to authenticate with: `Bearer` (RFC 6750).".to_owned()),
        style: HeaderStyle::Simple,
        required: false,
        deprecated: None,
        format: ParameterSchemaOrContent::Schema(ReferenceOr::Item(typed(string(None)))),
        example: None,
        examples: Default::default(),
        extensions: Default::default(),
    };
    unauthorized
        .headers
        .insert("WWW-Authenticate".to_owned(), ReferenceOr::Item(challenge));
    operation
        .responses
        .responses
        .insert(StatusCode::Code(401), ReferenceOr::Item(unauthorized));
}
