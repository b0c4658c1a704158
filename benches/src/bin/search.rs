fn main() {
    unimplemented!("written next")
}
