//! `orders.v1.OrderService`: checks each request against the rules its proto declares
//! (`buf.validate`), turns it into domain values, authorizes the caller, confirms
//! their account with users, and calls the store.
//!
//! The owner of a new order is always the verified caller, never a field of the
//! request. Someone else's order is NOT_FOUND, never PERMISSION_DENIED.

use std::sync::Arc;

use platform_api::rules::Validator;
use platform_api::{InvalidRequest, Violations, paginate, timestamp};
use platform_auth::{Caller, bearer_token, require_caller};
use platform_proto::orders::v1 as pb;
use platform_proto::orders::v1::order_service_server::OrderService;
use tonic::{Request, Response, Status};

use crate::accounts::Accounts;
use crate::domain::{self, FieldViolation, Items, Order, OrderId, OrderStatus, RawItem, UserId};
use crate::error::ApiError;
use crate::store::{Cancelled, Created, Filter, NewOrder, OrderStore, Page};
use crate::watch::{ChangeStream, Watch};

/// The gRPC face of the orders service.
#[derive(Debug, Clone)]
pub struct OrdersApi {
    store: Arc<dyn OrderStore>,
    accounts: Accounts,
    watch: Watch,
    /// The `buf.validate` rules of the requests.
    rules: Validator,
}

impl OrdersApi {
    /// The API over `store`, confirming accounts through `accounts`, its changes
    /// watched through `watch`.
    pub fn new(store: Arc<dyn OrderStore>, accounts: Accounts, watch: Watch) -> Self {
        Self {
            store,
            accounts,
            watch,
            rules: Validator::new(platform_proto::descriptor_pool().clone()),
        }
    }

    /// Whose orders the caller of `request` may read when asking for `user_id`'s
    /// (empty: their own, or every account's for an admin): `None` for every account.
    /// A non-admin asking for someone else's is PERMISSION_DENIED.
    async fn readable_owner<T>(
        &self,
        request: &Request<T>,
        user_id: &str,
    ) -> Result<Result<Option<UserId>, FieldViolation>, Status> {
        let caller = require_caller(request)?;
        let own = caller_id(&caller)?;
        let wants_others = !user_id.is_empty() && user_id != caller.subject;
        let admin = (caller.is_admin() || wants_others) && self.is_admin(request).await?;
        let wanted = if user_id.is_empty() {
            None
        } else {
            match UserId::parse("user_id", user_id) {
                Ok(user) => Some(user),
                Err(violation) => return Ok(Err(violation)),
            }
        };
        if admin {
            return Ok(Ok(wanted));
        }
        if wanted.is_some_and(|user| user != own) {
            return Err(ApiError::PermissionDenied(
                "filtering by another user requires the admin role",
            )
            .into());
        }
        Ok(Ok(Some(own)))
    }

    /// The order `id` if the caller of `request` may see it: their own, or any for an
    /// admin.
    async fn visible_order<T>(&self, request: &Request<T>, id: OrderId) -> Result<Order, Status> {
        let caller = require_caller(request)?;
        let order = self.store.get(id).await.map_err(ApiError::from)?;
        let order = order.ok_or(ApiError::NotFound)?;
        if caller.subject == order.user_id.to_string() || self.is_admin(request).await? {
            Ok(order)
        } else {
            Err(ApiError::NotFound.into())
        }
    }

    /// Whether the caller of `request` is an admin: their token says so *and* their
    /// account still does, asked of users on every use (admin calls are few, and a
    /// demoted admin must lose the rights at once, not when the token expires).
    async fn is_admin<T>(&self, request: &Request<T>) -> Result<bool, Status> {
        let caller = require_caller(request)?;
        if !caller.is_admin() {
            return Ok(false);
        }
        let token =
            bearer_token(request).ok_or_else(|| Status::unauthenticated("missing access token"))?;
        let remaining = platform_server::deadline::remaining(request);
        let admin = self.accounts.is_admin_now(&caller, token, remaining).await;
        Ok(admin.map_err(ApiError::from)?)
    }
}

/// The caller's account id.
fn caller_id(caller: &Caller) -> Result<UserId, Status> {
    UserId::parse("sub", &caller.subject)
        .map_err(|_| Status::unauthenticated("the access token's subject is not an account id"))
}

fn status_to_proto(status: OrderStatus) -> pb::OrderStatus {
    match status {
        OrderStatus::Pending => pb::OrderStatus::Pending,
        OrderStatus::Cancelled => pb::OrderStatus::Cancelled,
    }
}

pub(crate) fn to_proto(order: Order) -> pb::Order {
    pb::Order {
        id: order.id.to_string(),
        user_id: order.user_id.to_string(),
        items: order
            .items
            .into_iter()
            .map(|item| pb::OrderItem {
                sku: item.sku.as_str().to_owned(),
                quantity: item.quantity,
                unit_price_cents: item.unit_price_cents,
            })
            .collect(),
        total_cents: order.total_cents,
        status: status_to_proto(order.status) as i32,
        create_time: Some(timestamp(order.create_time)),
        update_time: Some(timestamp(order.update_time)),
    }
}

fn parse_id(id: &str) -> Result<OrderId, InvalidRequest> {
    Ok(OrderId::parse("id", id)?)
}

#[tonic::async_trait]
impl OrderService for OrdersApi {
    async fn create_order(
        &self,
        request: Request<pb::CreateOrderRequest>,
    ) -> Result<Response<pb::Order>, Status> {
        self.rules.check(request.get_ref())?;
        let caller = require_caller(&request)?;
        let user_id = caller_id(&caller)?;
        let token = bearer_token(&request)
            .cloned()
            .ok_or_else(|| Status::unauthenticated("missing access token"))?;
        let remaining = platform_server::deadline::remaining(&request);
        let req = request.into_inner();

        let raw: Vec<RawItem<'_>> = req
            .items
            .iter()
            .map(|item| RawItem {
                sku: &item.sku,
                quantity: item.quantity,
                unit_price_cents: item.unit_price_cents,
            })
            .collect();
        let mut violations = Violations::default();
        let items = violations.check_all(Items::parse(&raw));
        let request_id = domain::request_id(&req.request_id);
        violations.finish()?;
        let Some(items) = items else {
            return Err(ApiError::from(InvalidRequest::default()).into());
        };

        self.accounts
            .ensure_exists(&caller, &token, remaining)
            .await
            .map_err(ApiError::from)?;

        let created = self
            .store
            .create(&NewOrder {
                id: OrderId::generate(),
                user_id,
                items,
                request_id,
            })
            .await
            .map_err(ApiError::from)?;
        let order = match created {
            Created::New(order) => {
                tracing::info!(order.id = %order.id, order.total_cents = order.total_cents, "order created");
                order
            }
            Created::Retry(order) => {
                tracing::info!(order.id = %order.id, "idempotent retry answered with the stored order");
                order
            }
            Created::KeyReused(_) => return Err(ApiError::KeyReused.into()),
        };
        Ok(Response::new(to_proto(order)))
    }

    async fn get_order(
        &self,
        request: Request<pb::GetOrderRequest>,
    ) -> Result<Response<pb::Order>, Status> {
        self.rules.check(request.get_ref())?;
        let id = parse_id(&request.get_ref().id)?;
        let order = self.visible_order(&request, id).await?;
        Ok(Response::new(to_proto(order)))
    }

    async fn list_orders(
        &self,
        request: Request<pb::ListOrdersRequest>,
    ) -> Result<Response<pb::ListOrdersResponse>, Status> {
        self.rules.check(request.get_ref())?;
        let owner = self
            .readable_owner(&request, &request.get_ref().user_id)
            .await?;
        let req = request.into_inner();

        let mut violations = Violations::default();
        let page = violations.page(req.page_size, &req.page_token);
        let status = match pb::OrderStatus::try_from(req.status) {
            Ok(pb::OrderStatus::Unspecified) => None,
            Ok(pb::OrderStatus::Pending) => Some(OrderStatus::Pending),
            Ok(pb::OrderStatus::Cancelled) => Some(OrderStatus::Cancelled),
            Err(_) => {
                violations.push(FieldViolation::new("status", "is not a known order status"));
                None
            }
        };
        let user_id = violations.check(owner);
        violations.finish()?;

        let orders = self
            .store
            .list(
                Filter {
                    user_id: user_id.flatten(),
                    status,
                },
                Page {
                    limit: page.limit + 1,
                    after: page.after.map(OrderId::from),
                },
            )
            .await
            .map_err(ApiError::from)?;
        let (orders, next_page_token) = paginate(orders, page.limit, |o| o.id.as_uuid());
        Ok(Response::new(pb::ListOrdersResponse {
            orders: orders.into_iter().map(to_proto).collect(),
            next_page_token,
        }))
    }

    async fn cancel_order(
        &self,
        request: Request<pb::CancelOrderRequest>,
    ) -> Result<Response<pb::Order>, Status> {
        self.rules.check(request.get_ref())?;
        let id = parse_id(&request.get_ref().id)?;
        // Authorize on the stored owner first, so a stranger learns nothing.
        let order = self.visible_order(&request, id).await?;
        let caller = require_caller(&request)?;
        let reason = if caller.subject == order.user_id.to_string() {
            crate::events::reason::BY_OWNER
        } else {
            crate::events::reason::BY_ADMIN
        };
        match self
            .store
            .cancel(id, reason)
            .await
            .map_err(ApiError::from)?
        {
            Cancelled::Done(order) => {
                tracing::info!(order.id = %order.id, "order cancelled");
                Ok(Response::new(to_proto(order)))
            }
            Cancelled::NotPending(_) => Err(ApiError::NotPending.into()),
            Cancelled::NotFound => Err(ApiError::NotFound.into()),
        }
    }

    type WatchOrdersStream = ChangeStream;

    async fn watch_orders(
        &self,
        request: Request<pb::WatchOrdersRequest>,
    ) -> Result<Response<ChangeStream>, Status> {
        self.rules.check(request.get_ref())?;
        let owner = self
            .readable_owner(&request, &request.get_ref().user_id)
            .await?;
        let req = request.into_inner();
        let mut violations = Violations::default();
        let after = match req.after_event_id.as_str() {
            "" => Some(None),
            id => violations.check(uuid::Uuid::parse_str(id).map(Some).map_err(|_| {
                FieldViolation::new(
                    "after_event_id",
                    "is not an event id: pass the event_id of a change received",
                )
            })),
        };
        let owner = violations.check(owner);
        violations.finish()?;
        let (Some(owner), Some(after)) = (owner, after) else {
            return Err(ApiError::from(InvalidRequest::default()).into());
        };
        let changes = self
            .watch
            .open(owner, after)
            .await
            .map_err(ApiError::from)?;
        tracing::info!(
            watch.user = owner
                .map(|u| u.to_string())
                .unwrap_or_else(|| "*".to_owned()),
            watch.resumed = after.is_some(),
            "watch started"
        );
        Ok(Response::new(changes))
    }
}
