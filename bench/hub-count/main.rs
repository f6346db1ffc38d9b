//! One fixed Hub workload, for instruction counts under callgrind (`bench/hub-instructions.sh`
//! builds it against two revisions of bbrt-protocol): `MEMBERS` connections identified and
//! joined, `SENDS` messages sent from the first to all of them, then every connection closes.

#[path = "../src/hub_fixture.rs"]
mod hub_fixture;

use bbrt_protocol::hub::Input;
use bbrt_protocol::ids::ConnId;

fn main() {
    let arg = |i: usize| -> usize {
        std::env::args()
            .nth(i)
            .and_then(|a| a.parse().ok())
            .expect("usage: hub-count MEMBERS SENDS")
    };
    let (members, sends) = (arg(1), arg(2));
    let mut f = hub_fixture::Fixture::new(members);
    for _ in 0..sends {
        let frame = f.send.clone();
        let delivered = f.input(Input::Frame {
            conn: ConnId(0),
            frame,
            credential: None,
        });
        assert_eq!(delivered, members, "one delivery per member");
    }
    for i in 0..members {
        f.input(Input::Close {
            conn: ConnId(i as u64),
        });
    }
}
