// Every parameter names a field, and every field is a parameter.
#[sente_lite::channel("room/{nme}", events(Said))]
pub struct Room {
    pub name: String,
}

#[sente_lite::channel("org/{org}", events(Said))]
pub struct Org {
    pub org: u32,
    pub region: String,
}

fn main() {}
