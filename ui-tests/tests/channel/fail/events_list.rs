// The events are listed, each once, at least one.
#[sente_lite::channel("a/{name}")]
pub struct A {
    pub name: String,
}

#[sente_lite::channel("b/{name}", events())]
pub struct B {
    pub name: String,
}

#[sente_lite::channel("c/{name}", events(Said, Said))]
pub struct C {
    pub name: String,
}

fn main() {}
