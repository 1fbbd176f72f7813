// A handler that leaves out the context; `run` keeps the parameters as written.
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use sente_lite::{Handler, Router};
use serde::{Deserialize, Serialize};

#[sente_lite::event("math/double", reply = u64)]
#[derive(Serialize, Deserialize)]
pub struct Double {
    pub value: u64,
}

#[sente_lite::handler]
pub async fn double(Double { value }: Double) -> u64 {
    value * 2
}

/// Polls a future that never waits.
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the handler waited"),
    }
}

fn main() {
    assert_eq!(ready(double::run(Double { value: 21 })), 42);
    assert_eq!(double::NAME, "double");
    let table = Router::new().handler(double).build().expect("routes");
    assert_eq!(table.len(), 1);
}
