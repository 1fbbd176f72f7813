// `#[channel]` goes on a struct with named fields, not generic.
#[sente_lite::channel("a/{name}", events(Said))]
pub enum A {
    Name(String),
}

#[sente_lite::channel("b/{0}", events(Said))]
pub struct B(pub String);

#[sente_lite::channel("c/{name}", events(Said))]
pub struct C<T> {
    pub name: T,
}

fn main() {}
