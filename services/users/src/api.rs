//! `users.v1.UserService`: turns requests into domain values, authorizes the caller,
//! and calls the store.
//!
//! Authorization follows the contract: sign-up, sign-in and the key set are open;
//! everything else needs a verified caller (attached by the auth layer of the server),
//! who may act on their own account, or on any account when admin. Someone else's
//! account is NOT_FOUND, never PERMISSION_DENIED, so ids cannot be probed.

use std::sync::Arc;

use platform_auth::{Caller, Role, require_caller};
use platform_proto::users::v1 as pb;
use platform_proto::users::v1::user_service_server::UserService;
use tonic::{Request, Response, Status};

use platform_api::{InvalidRequest, Violations, decode_page_token, paginate, timestamp};

use crate::domain::{self, DisplayName, Email, Password, User, UserId};
use crate::error::ApiError;
use crate::keys::Keys;
use crate::password::Hasher;
use crate::store::{NewUser, UserChanges, UserStore};

/// The gRPC face of the users service.
#[derive(Debug, Clone)]
pub struct UsersApi {
    store: Arc<dyn UserStore>,
    hasher: Hasher,
    keys: Keys,
}

impl UsersApi {
    /// The API over `store`, hashing with `hasher` and signing with `keys`.
    pub fn new(store: Arc<dyn UserStore>, hasher: Hasher, keys: Keys) -> Self {
        Self {
            store,
            hasher,
            keys,
        }
    }

    /// Creates an account with `role`. Sign-up always passes [`Role::User`]; the
    /// operator command passes [`Role::Admin`].
    pub async fn create_account(
        &self,
        email: &str,
        display_name: &str,
        password: &str,
        role: Role,
    ) -> Result<User, ApiError> {
        let (email_input, display_name_input) = (email, display_name);
        let mut violations = Violations::default();
        let email = violations.check(Email::parse(email));
        let display_name = violations.check(DisplayName::parse(display_name));
        let password = violations.check(Password::parse_for(
            password,
            &[email_input, display_name_input],
        ));
        violations.finish()?;
        let (Some(email), Some(display_name), Some(password)) = (email, display_name, password)
        else {
            return Err(ApiError::Invalid(InvalidRequest::default()));
        };
        let password_hash = self.hasher.hash(&password).await?;
        let user = self
            .store
            .create(&NewUser {
                id: UserId::generate(),
                email,
                display_name,
                password_hash,
                role,
            })
            .await?;
        Ok(user)
    }

    /// The account `id` if `caller` may see it.
    async fn visible_user(&self, caller: &Caller, id: UserId) -> Result<User, ApiError> {
        if !may_act_on(caller, id) {
            return Err(ApiError::NotFound);
        }
        self.store.get(id).await?.ok_or(ApiError::NotFound)
    }
}

/// Whether `caller` may act on account `id`: their own, or any when admin.
fn may_act_on(caller: &Caller, id: UserId) -> bool {
    caller.is_admin() || caller.subject == id.to_string()
}

fn to_proto(user: User) -> pb::User {
    pb::User {
        id: user.id.to_string(),
        email: user.email.as_str().to_owned(),
        display_name: user.display_name.as_str().to_owned(),
        role: role_to_proto(user.role) as i32,
        create_time: Some(timestamp(user.create_time)),
        update_time: Some(timestamp(user.update_time)),
    }
}

fn role_to_proto(role: Role) -> pb::Role {
    match role {
        Role::User => pb::Role::User,
        Role::Admin => pb::Role::Admin,
    }
}

fn parse_id(id: &str) -> Result<UserId, InvalidRequest> {
    Ok(UserId::parse("id", id)?)
}

#[tonic::async_trait]
impl UserService for UsersApi {
    async fn create_user(
        &self,
        request: Request<pb::CreateUserRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let req = request.into_inner();
        let user = self
            .create_account(&req.email, &req.display_name, &req.password, Role::User)
            .await?;
        tracing::info!(user.id = %user.id, "user created");
        Ok(Response::new(to_proto(user)))
    }

    async fn get_user(
        &self,
        request: Request<pb::GetUserRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let caller = require_caller(&request)?;
        let id = parse_id(&request.get_ref().id)?;
        let user = self.visible_user(&caller, id).await?;
        Ok(Response::new(to_proto(user)))
    }

    async fn list_users(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        let caller = require_caller(&request)?;
        if !caller.is_admin() {
            return Err(ApiError::PermissionDenied("listing users requires the admin role").into());
        }
        let req = request.into_inner();
        let mut violations = Violations::default();
        let limit = violations.check(platform_api::page_size(req.page_size));
        let after = violations.check(decode_page_token(&req.page_token));
        violations.finish()?;
        let limit = limit.unwrap_or(platform_api::DEFAULT_PAGE_SIZE);
        let after = after.flatten().map(UserId::from);

        // One extra row tells whether another page exists without a COUNT.
        let users = self
            .store
            .list(limit + 1, after)
            .await
            .map_err(ApiError::from)?;
        let (users, next_page_token) = paginate(users, limit, |u| u.id.as_uuid());
        Ok(Response::new(pb::ListUsersResponse {
            users: users.into_iter().map(to_proto).collect(),
            next_page_token,
        }))
    }

    async fn update_user(
        &self,
        request: Request<pb::UpdateUserRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let caller = require_caller(&request)?;
        let req = request.into_inner();
        let id = parse_id(&req.id)?;
        if !may_act_on(&caller, id) {
            return Err(ApiError::NotFound.into());
        }

        let mut violations = Violations::default();
        let display_name = req
            .display_name
            .as_deref()
            .and_then(|name| violations.check(DisplayName::parse(name)));
        let password = req.password.as_deref().and_then(|pw| {
            let context: Vec<&str> = req.display_name.as_deref().into_iter().collect();
            violations.check(Password::parse_for(pw, &context))
        });
        let role = match req.role.map(pb::Role::try_from) {
            None => None,
            Some(Ok(pb::Role::User)) => Some(Role::User),
            Some(Ok(pb::Role::Admin)) => Some(Role::Admin),
            Some(_) => {
                violations.push(domain::FieldViolation::new(
                    "role",
                    "must be ROLE_USER or ROLE_ADMIN",
                ));
                None
            }
        };
        violations.finish()?;
        if role.is_some() && !caller.is_admin() {
            return Err(
                ApiError::PermissionDenied("changing a role requires the admin role").into(),
            );
        }

        let password_hash = match &password {
            Some(pw) => Some(self.hasher.hash(pw).await.map_err(ApiError::from)?),
            None => None,
        };
        let changes = UserChanges {
            display_name,
            password_hash,
            role,
        };
        let user = self
            .store
            .update(id, &changes)
            .await
            .map_err(ApiError::from)?
            .ok_or(ApiError::NotFound)?;
        tracing::info!(user.id = %user.id, "user updated");
        Ok(Response::new(to_proto(user)))
    }

    async fn delete_user(
        &self,
        request: Request<pb::DeleteUserRequest>,
    ) -> Result<Response<()>, Status> {
        let caller = require_caller(&request)?;
        let id = parse_id(&request.get_ref().id)?;
        if !may_act_on(&caller, id) || !self.store.delete(id).await.map_err(ApiError::from)? {
            return Err(ApiError::NotFound.into());
        }
        tracing::info!(user.id = %id, "user deleted");
        Ok(Response::new(()))
    }

    async fn create_token(
        &self,
        request: Request<pb::CreateTokenRequest>,
    ) -> Result<Response<pb::CreateTokenResponse>, Status> {
        const REJECTED: ApiError = ApiError::Unauthenticated("invalid email or password");
        let req = request.into_inner();
        // A malformed email is answered like an unknown one, after the same work, so
        // neither the answer nor its timing tells which emails have accounts.
        let account = match Email::parse(&req.email) {
            Ok(email) => self
                .store
                .credentials(&email)
                .await
                .map_err(ApiError::from)?,
            Err(_) => None,
        };
        let hash = account.as_ref().map(|(_, hash)| hash);
        let matches = self
            .hasher
            .verify(&req.password, hash)
            .await
            .map_err(ApiError::from)?;
        let Some((user, _)) = account.filter(|_| matches) else {
            return Err(REJECTED.into());
        };
        let token = self
            .keys
            .issuer
            .issue(&user.id.to_string(), user.role)
            .map_err(ApiError::from)?;
        tracing::info!(user.id = %user.id, "token issued");
        Ok(Response::new(pb::CreateTokenResponse {
            access_token: token.access_token,
            token_type: "Bearer".to_owned(),
            expires_in: i64::try_from(token.expires_in.as_secs()).unwrap_or(i64::MAX),
        }))
    }

    async fn get_jwks(
        &self,
        _request: Request<pb::GetJwksRequest>,
    ) -> Result<Response<pb::GetJwksResponse>, Status> {
        let keys = self
            .keys
            .jwks
            .iter()
            .map(platform_auth::jwk_to_proto)
            .collect();
        Ok(Response::new(pb::GetJwksResponse { keys }))
    }
}
