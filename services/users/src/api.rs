//! `users.v1.UserService`: checks each request against the rules its proto declares
//! (`buf.validate`), turns it into domain values, authorizes the caller, and calls
//! the store.
//!
//! Authorization follows the contract: sign-up, sign-in, refresh, sign-out and the
//! key set are open; everything else needs a verified caller (attached by the auth
//! layer of the server), who may act on their own account, or on any account when
//! admin. Someone else's account is NOT_FOUND, never PERMISSION_DENIED, so ids cannot
//! be probed.
//!
//! The token says who calls; what they may do is read from their account as it is
//! now, on every call: a deleted account's token stops working and a demoted admin
//! loses admin rights at once, without waiting for the token to expire.

use std::sync::Arc;
use std::time::Duration;

use platform_auth::{Caller, Clock, Role, SystemClock, require_caller};
use platform_db::Database;
use platform_proto::users::v1 as pb;
use platform_proto::users::v1::user_service_server::UserService;
use tonic::{Request, Response, Status};

use platform_api::rules::Validator;
use platform_api::{InvalidRequest, Violations, paginate, timestamp};

use crate::domain::{self, DisplayName, Email, Password, PasswordHash, User, UserId};
use crate::error::ApiError;
use crate::keys::Keys;
use crate::password::Hasher;
use crate::sessions::{RefreshToken, SignInLimits};
use crate::settings::Settings;
use crate::store::{
    self, NewRefreshToken, NewUser, Rotation, SessionStore, SignInFailures, UserChanges, UserStore,
};

/// The one answer to a sign-in that fails, whatever the reason.
const REJECTED: ApiError = ApiError::Unauthenticated("invalid email or password");
/// The one answer to a refresh token that cannot be exchanged, whatever the reason.
const REFRESH_REFUSED: ApiError =
    ApiError::Unauthenticated("invalid, expired or revoked refresh token; sign in again");

/// The gRPC face of the users service.
#[derive(Debug, Clone)]
pub struct UsersApi {
    store: Arc<dyn UserStore>,
    sessions: Arc<dyn SessionStore>,
    hasher: Hasher,
    keys: Keys,
    /// The `buf.validate` rules of the requests.
    rules: Validator,
    refresh_ttl: Duration,
    limits: SignInLimits,
    /// When refresh tokens expire and lock-outs end; the issuer of access tokens
    /// keeps its own clock.
    clock: Arc<dyn Clock>,
}

impl UsersApi {
    /// The API over the stores of `database`, hashing with `hasher`, signing with
    /// `keys`, with the token lifetimes and sign-in limits of `settings`.
    pub fn new(database: &Database, hasher: Hasher, keys: Keys, settings: &Settings) -> Self {
        Self {
            store: store::open(database),
            sessions: store::open_sessions(database),
            hasher,
            keys,
            rules: Validator::new(platform_proto::descriptor_pool().clone()),
            refresh_ttl: Duration::from_secs(settings.auth.refresh_token_ttl_secs),
            limits: SignInLimits::from_settings(&settings.sign_in),
            clock: Arc::new(SystemClock),
        }
    }

    /// Reads the time from `clock` instead of the system's, so tests can expire
    /// refresh tokens and lock-outs without waiting.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
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
        // The operator command comes here without a request: the same rules apply.
        self.rules.check(&pb::CreateUserRequest {
            email: email.to_owned(),
            display_name: display_name.to_owned(),
            password: password.to_owned(),
        })?;
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
            return Err(ApiError::from(InvalidRequest::default()));
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

    /// The verified caller with the role their account has now, and that account.
    async fn current_caller<T>(&self, request: &Request<T>) -> Result<(Caller, User), Status> {
        let caller = require_caller(request)?;
        let gone = ApiError::Unauthenticated("the account of this access token no longer exists");
        let Ok(id) = UserId::parse("sub", &caller.subject) else {
            return Err(gone.into());
        };
        let user = self
            .store
            .get(id)
            .await
            .map_err(ApiError::from)?
            .ok_or(gone)?;
        let caller = Caller {
            subject: caller.subject,
            role: user.role,
        };
        Ok((caller, user))
    }

    /// Refuses at once, before any hashing, an email locked by recent failures; what is
    /// recorded for it otherwise.
    async fn check_sign_in_allowed(
        &self,
        email: &Email,
        now: i64,
    ) -> Result<Option<SignInFailures>, ApiError> {
        let recorded = self.sessions.sign_in_failures(email).await?;
        if let Some(f) = recorded
            && let Some(retry_after) = self.limits.retry_after(f.failures, f.last_failure_at, now)
        {
            return Err(ApiError::SignInLocked { retry_after });
        }
        Ok(recorded)
    }

    /// Counts a failed password check for `email`.
    async fn record_failure(&self, email: &Email, now: i64) -> Result<(), ApiError> {
        let forget = i64::try_from(SignInLimits::FORGET_AFTER.as_secs()).unwrap_or(i64::MAX);
        let recorded = self
            .sessions
            .record_sign_in_failure(email, now, now.saturating_sub(forget))
            .await?;
        if self.limits.lockout_after(recorded.failures).is_some() {
            tracing::warn!(
                failures = recorded.failures,
                "sign-ins for an email are locked after repeated failures"
            );
        }
        Ok(())
    }

    /// A new refresh token valid from `now`, and what the store keeps of it.
    fn new_refresh_token(&self, now: i64) -> Result<(RefreshToken, NewRefreshToken), ApiError> {
        let token = RefreshToken::generate()?;
        let ttl = i64::try_from(self.refresh_ttl.as_secs()).unwrap_or(i64::MAX);
        let stored = NewRefreshToken {
            hash: token.hash(),
            now,
            expires_at: now.saturating_add(ttl),
        };
        Ok((token, stored))
    }

    /// The answer carrying a new access token for `user` and `refresh`.
    fn token_response(
        &self,
        user: &User,
        refresh: &RefreshToken,
    ) -> Result<pb::CreateTokenResponse, ApiError> {
        let access = self.keys.issuer.issue(&user.id.to_string(), user.role)?;
        Ok(pb::CreateTokenResponse {
            access_token: access.access_token,
            token_type: "Bearer".to_owned(),
            expires_in: i64::try_from(access.expires_in.as_secs()).unwrap_or(i64::MAX),
            refresh_token: refresh.expose().to_owned(),
            refresh_expires_in: i64::try_from(self.refresh_ttl.as_secs()).unwrap_or(i64::MAX),
        })
    }

    /// Checks `current`, the password the caller says their account has: counted
    /// against the account's sign-in limit like a sign-in, since it is one.
    async fn check_current_password(&self, user: &User, current: &str) -> Result<(), ApiError> {
        let now = self.clock.unix_now();
        self.check_sign_in_allowed(&user.email, now).await?;
        let hash: Option<PasswordHash> = self
            .store
            .credentials_by_id(user.id)
            .await?
            .map(|(_, hash)| hash);
        if self.hasher.verify(current, hash.as_ref()).await? {
            return Ok(());
        }
        self.record_failure(&user.email, now).await?;
        Err(ApiError::PermissionDenied(
            "current_password does not match the account's password",
        ))
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
        self.rules.check(request.get_ref())?;
        let (caller, me) = self.current_caller(&request).await?;
        let id = parse_id(&request.get_ref().id)?;
        let user = if id == me.id {
            me
        } else {
            self.visible_user(&caller, id).await?
        };
        Ok(Response::new(to_proto(user)))
    }

    async fn list_users(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        self.rules.check(request.get_ref())?;
        let (caller, _) = self.current_caller(&request).await?;
        if !caller.is_admin() {
            return Err(ApiError::PermissionDenied("listing users requires the admin role").into());
        }
        let req = request.into_inner();
        let mut violations = Violations::default();
        let page = violations.page(req.page_size, &req.page_token);
        violations.finish()?;

        // One extra row tells whether another page exists without a COUNT.
        let users = self
            .store
            .list(page.limit + 1, page.after.map(UserId::from))
            .await
            .map_err(ApiError::from)?;
        let (users, next_page_token) = paginate(users, page.limit, |u| u.id.as_uuid());
        Ok(Response::new(pb::ListUsersResponse {
            users: users.into_iter().map(to_proto).collect(),
            next_page_token,
        }))
    }

    async fn update_user(
        &self,
        request: Request<pb::UpdateUserRequest>,
    ) -> Result<Response<pb::User>, Status> {
        self.rules.check(request.get_ref())?;
        let (caller, me) = self.current_caller(&request).await?;
        let req = request.into_inner();
        let id = parse_id(&req.id)?;
        if !may_act_on(&caller, id) {
            return Err(ApiError::NotFound.into());
        }
        // Whoever holds a session (or a stolen access token) of an account must not be
        // able to take it over: a new password for one's own account needs the
        // current one. An admin resetting someone else's password does not know it.
        let own_password_change = req.password.is_some() && id == me.id;

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
        let current_password = req.current_password.as_deref();
        if own_password_change && current_password.is_none() {
            violations.push(domain::FieldViolation::new(
                "current_password",
                "is required to change your own password",
            ));
        }
        violations.finish()?;
        if role.is_some() && !caller.is_admin() {
            return Err(
                ApiError::PermissionDenied("changing a role requires the admin role").into(),
            );
        }
        if own_password_change && let Some(current) = current_password {
            self.check_current_password(&me, current).await?;
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
        // Whoever signed in with the old password, or under the old role, signs in
        // again.
        if changes.password_hash.is_some() || changes.role.is_some() {
            let revoked = self
                .sessions
                .revoke_all(id, self.clock.unix_now())
                .await
                .map_err(ApiError::from)?;
            tracing::info!(user.id = %id, sessions = revoked, "sessions of the account revoked");
        }
        tracing::info!(user.id = %user.id, "user updated");
        Ok(Response::new(to_proto(user)))
    }

    async fn delete_user(
        &self,
        request: Request<pb::DeleteUserRequest>,
    ) -> Result<Response<()>, Status> {
        self.rules.check(request.get_ref())?;
        let (caller, _) = self.current_caller(&request).await?;
        let id = parse_id(&request.get_ref().id)?;
        // Its sessions go with it (the families reference the account, ON DELETE CASCADE).
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
        self.rules.check(request.get_ref())?;
        let req = request.into_inner();
        let now = self.clock.unix_now();
        // Limited per normalised email whether or not an account has it, so a lock-out
        // tells nothing about which emails have accounts.
        let email = Email::parse(&req.email).ok();
        let recorded = match &email {
            Some(email) => self.check_sign_in_allowed(email, now).await?,
            None => None,
        };
        // A malformed email is answered like an unknown one, after the same work, so
        // neither the answer nor its timing tells which emails have accounts.
        let account = match &email {
            Some(email) => self
                .store
                .credentials(email)
                .await
                .map_err(ApiError::from)?,
            None => None,
        };
        let hash = account.as_ref().map(|(_, hash)| hash);
        let matches = self
            .hasher
            .verify(&req.password, hash)
            .await
            .map_err(ApiError::from)?;
        let Some((user, _)) = account.filter(|_| matches) else {
            if let Some(email) = &email {
                self.record_failure(email, now).await?;
            }
            return Err(REJECTED.into());
        };
        if recorded.is_some() {
            self.sessions
                .clear_sign_in_failures(&user.email)
                .await
                .map_err(ApiError::from)?;
        }
        let (refresh, stored) = self.new_refresh_token(now)?;
        self.sessions
            .start_family(user.id, &stored)
            .await
            .map_err(ApiError::from)?;
        let response = self.token_response(&user, &refresh)?;
        tracing::info!(user.id = %user.id, "signed in");
        Ok(Response::new(response))
    }

    async fn refresh_token(
        &self,
        request: Request<pb::RefreshTokenRequest>,
    ) -> Result<Response<pb::CreateTokenResponse>, Status> {
        self.rules.check(request.get_ref())?;
        let req = request.into_inner();
        let Some(presented) = RefreshToken::parse(&req.refresh_token) else {
            return Err(REFRESH_REFUSED.into());
        };
        let now = self.clock.unix_now();
        let (next, stored) = self.new_refresh_token(now)?;
        let rotation = self
            .sessions
            .rotate(&presented.hash(), &stored)
            .await
            .map_err(ApiError::from)?;
        let user = match rotation {
            Rotation::Rotated(id) => self.store.get(id).await.map_err(ApiError::from)?,
            Rotation::Reused(id) => {
                tracing::warn!(
                    user.id = %id,
                    "a used refresh token was presented again; its session is revoked"
                );
                None
            }
            Rotation::Refused => None,
        };
        let Some(user) = user else {
            return Err(REFRESH_REFUSED.into());
        };
        let response = self.token_response(&user, &next)?;
        tracing::info!(user.id = %user.id, "tokens refreshed");
        Ok(Response::new(response))
    }

    async fn revoke_token(
        &self,
        request: Request<pb::RevokeTokenRequest>,
    ) -> Result<Response<()>, Status> {
        self.rules.check(request.get_ref())?;
        let req = request.into_inner();
        // RFC 7009 §2.2: a token that is unknown, or already invalid, is answered like
        // one just revoked; the client has nothing left to do either way.
        if let Some(token) = RefreshToken::parse(&req.refresh_token) {
            let revoked = self
                .sessions
                .revoke_family_of(&token.hash(), self.clock.unix_now())
                .await
                .map_err(ApiError::from)?;
            if revoked {
                tracing::info!("signed out");
            }
        }
        Ok(Response::new(()))
    }

    async fn get_jwks(
        &self,
        request: Request<pb::GetJwksRequest>,
    ) -> Result<Response<pb::GetJwksResponse>, Status> {
        self.rules.check(request.get_ref())?;
        let keys = self
            .keys
            .jwks
            .iter()
            .map(platform_auth::jwk_to_proto)
            .collect();
        Ok(Response::new(pb::GetJwksResponse { keys }))
    }
}
