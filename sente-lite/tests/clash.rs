//! Events that cannot live together: the same id in two modules, and two ids
//! whose keys collide. Each is named, with both types, when a registry check or a
//! router build sees them. (A test binary of its own: its registry is clashing.)

use sente_lite::registry::{self, ClashError};
use sente_lite::{Router, RouterError};
use serde::{Deserialize, Serialize};

mod billing {
    use super::*;

    #[sente_lite::event("shop/order")]
    #[derive(Serialize, Deserialize)]
    pub(super) struct Order {
        pub(super) id: u64,
    }

    #[sente_lite::handler]
    pub(super) async fn on_order(_o: Order) {}

    // "clash/e69089" and "clash/e1009284" share the FNV-1a key 0x1fdd7a9e.
    #[sente_lite::event("clash/e69089")]
    #[derive(Serialize, Deserialize)]
    pub(super) struct First;

    #[sente_lite::handler]
    pub(super) async fn on_first(_e: First) {}
}

mod shipping {
    use super::*;

    #[sente_lite::event("shop/order")]
    #[derive(Serialize, Deserialize)]
    pub(super) struct Order {
        pub(super) id: u64,
    }

    #[sente_lite::handler]
    pub(super) async fn on_order(_o: Order) {}

    #[sente_lite::event("clash/e1009284")]
    #[derive(Serialize, Deserialize)]
    pub(super) struct Second;

    #[sente_lite::handler]
    pub(super) async fn on_second(_e: Second) {}
}

#[test]
fn the_same_id_in_two_modules_is_named_when_a_router_is_built() {
    let err = Router::new()
        .handler(billing::on_order)
        .handler(shipping::on_order)
        .build()
        .unwrap_err();
    let RouterError::Clash(ClashError::SameId { id, first, second }) = &err else {
        panic!("unexpected {err:?}");
    };
    assert_eq!(*id, "shop/order");
    assert_eq!(
        (first.as_str(), second.as_str()),
        ("clash::billing::Order", "clash::shipping::Order")
    );
    assert!(err.to_string().contains("declared twice"), "{err}");
}

#[test]
fn colliding_keys_are_named_when_a_router_is_built() {
    assert_eq!(
        sente_lite::EventKey::of("clash/e69089"),
        sente_lite::EventKey::of("clash/e1009284")
    );
    let err = Router::new()
        .handler(billing::on_first)
        .handler(shipping::on_second)
        .build()
        .unwrap_err();
    let RouterError::Clash(ClashError::SameKey {
        first_id,
        second_id,
        first,
        second,
        ..
    }) = &err
    else {
        panic!("unexpected {err:?}");
    };
    assert_eq!((*first_id, *second_id), ("clash/e69089", "clash/e1009284"));
    assert_eq!(
        (first.as_str(), second.as_str()),
        ("clash::billing::First", "clash::shipping::Second")
    );
}

#[test]
fn the_registry_check_reports_a_clash_and_a_router_refuses_to_build() {
    assert!(registry::check().is_err());
    // Even a router that routes none of the clashing events refuses: the program is inconsistent.
    let err = Router::new()
        .handler(billing::on_order)
        .build()
        .unwrap_err();
    assert!(matches!(err, RouterError::Clash(_)), "{err:?}");
}
