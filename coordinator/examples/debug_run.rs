use coordinator::planner::profile::read_profile;
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let text = std::fs::read_to_string(&a[1]).unwrap();
    let mut cfg: coordinator::config::Config = toml::from_str(&text).unwrap();
    cfg.platform.kind = coordinator::config::PlatformKind::Lambda;
    let prof = read_profile(std::path::Path::new(&a[2])).unwrap();
    let bounds: Vec<usize> = a[3].split(',').map(|x| x.parse().unwrap()).collect();
    let memory: Vec<u32> = a[4].split(',').map(|x| x.parse().unwrap()).collect();
    let p = coordinator::planner::evaluate_split(&cfg, &prof, 469, &bounds, &memory).unwrap();
    println!("{:#?}", p.predicted);
    println!("{:#?}", p.run);
    println!("{:#?}", p.slices);
}
