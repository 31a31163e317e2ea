fn main() {
    println!("batchsample");
}
