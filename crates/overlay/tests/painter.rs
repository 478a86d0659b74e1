//! Behaviour of the public painter API: clipping and robustness against bad geometry,
//! label placement, style switches and overrides, text and the slate.

use sightline_core::{BBox, ClassId, Frame, Point, Pts, TrackId};
use sightline_overlay::{
    Color, DrawStyle, Painter, Scene, SceneLine, SceneObject, SceneZone, class_color,
};

const BLACK: [u8; 3] = [0, 0, 0];

fn painter() -> Painter {
    Painter::new(DrawStyle::default()).unwrap()
}

fn black(w: u32, h: u32) -> Frame {
    Frame::filled(w, h, BLACK, Pts::ZERO)
}

fn person(b: BBox) -> SceneObject<'static> {
    SceneObject {
        bbox: b,
        class_id: ClassId(0),
        class_name: "person",
        score: 0.87,
        track_id: Some(TrackId(12)),
    }
}

fn count(f: &Frame, pred: impl Fn(u32, u32, [u8; 3]) -> bool) -> usize {
    let mut n = 0;
    for y in 0..f.height {
        for x in 0..f.width {
            if pred(x, y, f.pixel(x, y)) {
                n += 1;
            }
        }
    }
    n
}

/// A small deterministic generator for the robustness test.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn coord(&mut self) -> f32 {
        match self.next() % 10 {
            0 => f32::NAN,
            1 => f32::INFINITY,
            2 => -1e30,
            3 => 1e30,
            4 => -((self.next() % 100) as f32),
            _ => (self.next() % 400) as f32 / 4.0 - 10.0,
        }
    }
    fn point(&mut self) -> Point {
        Point::new(self.coord(), self.coord())
    }
}

#[test]
fn random_and_absurd_geometry_never_panics() {
    let mut p = painter();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let long = "W".repeat(5000);
    for round in 0..400 {
        let (w, h) = (1 + (rng.next() % 90) as u32, 1 + (rng.next() % 70) as u32);
        let mut f = black(w, h);
        let objects: Vec<SceneObject<'_>> = (0..6)
            .map(|_| SceneObject {
                score: rng.coord(),
                class_id: ClassId(rng.next() as u32),
                ..person(BBox::new(
                    rng.coord(),
                    rng.coord(),
                    rng.coord(),
                    rng.coord(),
                ))
            })
            .collect();
        let polys: Vec<Vec<Point>> = (0..3)
            .map(|_| (0..(rng.next() % 7)).map(|_| rng.point()).collect())
            .collect();
        let zones: Vec<SceneZone<'_>> = polys
            .iter()
            .map(|poly| SceneZone {
                name: "z",
                polygon: poly,
                color: None,
                count: Some(3),
            })
            .collect();
        let lines: Vec<SceneLine<'_>> = (0..3)
            .map(|_| SceneLine {
                name: "l",
                a: rng.point(),
                b: rng.point(),
                in_count: u32::MAX,
                out_count: 0,
                in_label: Some(""),
                out_label: None,
                color: Some(Color::rgba(1, 2, 3, 0)),
            })
            .collect();
        let status = ["", long.as_str(), "a\nb"];
        let scene = Scene {
            objects: &objects,
            zones: &zones,
            lines: &lines,
            status: &status,
            timestamp: Some(if round % 2 == 0 { long.as_str() } else { "" }),
        };
        p.draw_scene(&mut f, &scene);
        assert_eq!(f.data.len(), (w * h * 3) as usize);
        p.draw_text(
            &mut f,
            i32::MIN,
            i32::MAX,
            &long,
            u32::MAX,
            Color::WHITE,
            Some(Color::BLACK),
        );
        p.draw_text(&mut f, -3, -3, "ok", 0, Color::WHITE, None);
        p.draw_slate(&mut f, &long, "detail\nsecond line");
    }
}

#[test]
fn boxes_outside_the_frame_draw_nothing_and_short_buffers_are_left_alone() {
    let mut p = painter();
    let mut f = black(64, 48);
    let objects = [
        person(BBox::new(100.0, 10.0, 150.0, 40.0)),
        person(BBox::new(-80.0, -60.0, -10.0, -5.0)),
        person(BBox::new(f32::NAN, 0.0, 10.0, 10.0)),
    ];
    p.draw_scene(
        &mut f,
        &Scene {
            objects: &objects,
            ..Scene::default()
        },
    );
    assert_eq!(count(&f, |_, _, px| px != BLACK), 0);

    let mut short = black(64, 48);
    short.data.truncate(100);
    p.draw_scene(
        &mut short,
        &Scene {
            objects: &[person(BBox::new(0.0, 0.0, 9.0, 9.0))],
            ..Scene::default()
        },
    );
    p.draw_slate(&mut short, "SIGNAL LOST", "");
    assert!(short.data.iter().all(|&v| v == 0));
}

#[test]
fn box_partly_outside_is_clipped_to_its_visible_edges() {
    let style = DrawStyle {
        show_labels: false,
        ..DrawStyle::default()
    };
    let mut p = Painter::new(style).unwrap();
    let mut f = black(100, 80);
    let objects = [person(BBox::new(60.0, 20.0, 160.0, 200.0))];
    p.draw_scene(
        &mut f,
        &Scene {
            objects: &objects,
            ..Scene::default()
        },
    );
    let c = class_color(0);
    let rgb = [c.r, c.g, c.b];
    // Top edge (2 px) from x=60 to the right border, left edge down to the bottom border.
    assert_eq!(count(&f, |_, _, px| px == rgb), 40 * 2 + 2 * (80 - 22));
    assert_eq!(f.pixel(99, 21), rgb);
    assert_eq!(f.pixel(60, 79), rgb);
}

#[test]
fn labels_sit_above_boxes_or_inside_at_the_top() {
    let mut p = painter();
    let c = class_color(0);
    let rgb = [c.r, c.g, c.b];

    let mut f = black(320, 240);
    p.draw_scene(
        &mut f,
        &Scene {
            objects: &[person(BBox::new(100.0, 100.0, 200.0, 200.0))],
            ..Scene::default()
        },
    );
    let above = count(&f, |x, y, px| {
        px == rgb && (100..200).contains(&x) && y < 100
    });
    assert!(above > 300, "label background above the box: {above}");
    assert!(
        count(&f, |_, y, px| px != BLACK && y < 70) == 0,
        "label is tight to the box"
    );

    let mut f = black(320, 240);
    p.draw_scene(
        &mut f,
        &Scene {
            objects: &[person(BBox::new(100.0, -30.0, 200.0, 120.0))],
            ..Scene::default()
        },
    );
    // The label starts at the top row, inside the box.
    assert_eq!(f.pixel(101, 0), rgb);
    let label_rows = (0..240).filter(|&y| f.pixel(150, y) != BLACK).count();
    assert!(label_rows > 10, "{label_rows}");
}

#[test]
fn labels_follow_the_style_switches() {
    let objects = [person(BBox::new(50.0, 60.0, 150.0, 200.0))];
    let scene = Scene {
        objects: &objects,
        ..Scene::default()
    };
    let mut widths = Vec::new();
    for (scores, ids) in [(true, true), (true, false), (false, false)] {
        let style = DrawStyle {
            show_scores: scores,
            show_track_ids: ids,
            ..DrawStyle::default()
        };
        let mut p = Painter::new(style).unwrap();
        let mut f = black(320, 240);
        p.draw_scene(&mut f, &scene);
        widths.push(count(&f, |_, y, px| px != BLACK && y < 60));
    }
    assert!(widths[0] > widths[1] && widths[1] > widths[2], "{widths:?}");
}

#[test]
fn hidden_layers_are_not_drawn() {
    let poly = [
        Point::new(10.0, 10.0),
        Point::new(90.0, 10.0),
        Point::new(90.0, 90.0),
        Point::new(10.0, 90.0),
    ];
    let zones = [SceneZone {
        name: "dock",
        polygon: &poly,
        color: None,
        count: Some(1),
    }];
    let lines = [SceneLine {
        name: "gate",
        a: Point::new(120.0, 20.0),
        b: Point::new(120.0, 180.0),
        in_count: 1,
        out_count: 2,
        in_label: None,
        out_label: None,
        color: None,
    }];
    let scene = Scene {
        zones: &zones,
        lines: &lines,
        status: &["25.0 fps"],
        timestamp: Some("12:00:00"),
        ..Scene::default()
    };
    let hidden = DrawStyle {
        show_zones: false,
        show_lines: false,
        show_status: false,
        show_timestamp: false,
        ..DrawStyle::default()
    };
    let mut f = black(240, 200);
    Painter::new(hidden).unwrap().draw_scene(&mut f, &scene);
    assert_eq!(count(&f, |_, _, px| px != BLACK), 0);

    let mut f = black(240, 200);
    painter().draw_scene(&mut f, &scene);
    // Translucent zone fill inside the zone, status corner top left, timestamp top right.
    let fill = f.pixel(50, 60);
    assert!(fill != BLACK && fill[0] < 128, "{fill:?}");
    assert!(count(&f, |x, y, px| px != BLACK && x < 60 && y < 30) > 100);
    assert!(count(&f, |x, y, px| px != BLACK && x > 180 && y < 30) > 100);
}

#[test]
fn zone_fill_opacity_sets_the_blend() {
    let poly = [
        Point::new(0.0, 0.0),
        Point::new(40.0, 0.0),
        Point::new(40.0, 40.0),
        Point::new(0.0, 40.0),
    ];
    let zones = [SceneZone {
        name: "",
        polygon: &poly,
        color: Some(Color::rgb(200, 100, 0)),
        count: None,
    }];
    for (opacity, expect) in [
        (0.0f32, [0, 0, 0]),
        (0.5, [100, 50, 0]),
        (1.0, [200, 100, 0]),
    ] {
        let style = DrawStyle {
            zone_fill_opacity: opacity,
            ..DrawStyle::default()
        };
        let mut f = Frame::filled(60, 60, BLACK, Pts::ZERO);
        Painter::new(style).unwrap().draw_scene(
            &mut f,
            &Scene {
                zones: &zones,
                ..Scene::default()
            },
        );
        assert_eq!(f.pixel(20, 30), expect, "opacity {opacity}");
    }
}

#[test]
fn class_colours_come_from_the_palette_or_the_override() {
    let mut style = DrawStyle::default();
    style.class_colors.insert("person".into(), "#00ff00".into());
    let p = Painter::new(style).unwrap();
    assert_eq!(p.class_color(ClassId(0), "person"), Color::rgb(0, 255, 0));
    assert_eq!(p.class_color(ClassId(2), "car"), class_color(2));
    assert_ne!(class_color(0), class_color(2));
}

#[test]
fn invalid_styles_are_refused_and_the_old_one_kept() {
    let mut style = DrawStyle {
        font_size: 2,
        ..DrawStyle::default()
    };
    style.class_colors.insert("car".into(), "blue".into());
    let err = Painter::new(style.clone()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("font_size") && msg.contains("class_colors.car"),
        "{msg}"
    );
    use sightline_core::error::Classify;
    assert_eq!(err.kind(), sightline_core::ErrorKind::InvalidInput);

    let mut p = painter();
    assert!(p.set_style(style).is_err());
    assert_eq!(p.style(), &DrawStyle::default());
    let bigger = DrawStyle {
        font_size: 30,
        ..DrawStyle::default()
    };
    p.set_style(bigger.clone()).unwrap();
    assert_eq!(p.style(), &bigger);
}

#[test]
fn draw_text_paints_its_box_only() {
    let mut p = painter();
    let mut f = Frame::filled(200, 100, [255, 255, 255], Pts::ZERO);
    let b = p.draw_text(
        &mut f,
        10,
        20,
        "12:00:03",
        20,
        Color::WHITE,
        Some(Color::rgb(0, 0, 80)),
    );
    assert_eq!((b.x, b.y), (10, 20));
    let m = p.measure_text("12:00:03", 20);
    assert!(b.width > m.width && b.height > m.height);
    let inside = |x: u32, y: u32| {
        (x as i32) >= b.x
            && (x as i32) < b.x + b.width as i32
            && (y as i32) >= b.y
            && (y as i32) < b.y + b.height as i32
    };
    assert_eq!(
        count(&f, |x, y, px| !inside(x, y) && px != [255, 255, 255]),
        0
    );
    assert_eq!(f.pixel(10, 20), [0, 0, 80]);
    // White glyph pixels over the background.
    assert!(count(&f, |x, y, px| inside(x, y) && px == [255, 255, 255]) > 30);
}

#[test]
fn slate_dims_and_centres_its_text() {
    let mut p = painter();
    let mut f = Frame::filled(640, 360, [200, 200, 200], Pts::ZERO);
    p.draw_slate(&mut f, "SIGNAL LOST", "reconnecting… attempt 3");
    assert_eq!(f.pixel(0, 0), [70, 70, 70]);
    assert_eq!(f.pixel(639, 359), [70, 70, 70]);
    let white: Vec<(u32, u32)> = (0..360)
        .flat_map(|y| (0..640).map(move |x| (x, y)))
        .filter(|&(x, y)| f.pixel(x, y) == [255, 255, 255])
        .collect();
    assert!(white.len() > 1000, "{}", white.len());
    let (min_x, max_x) = white
        .iter()
        .fold((u32::MAX, 0), |(a, b), &(x, _)| (a.min(x), b.max(x)));
    let (min_y, max_y) = white
        .iter()
        .fold((u32::MAX, 0), |(a, b), &(_, y)| (a.min(y), b.max(y)));
    assert!(
        ((min_x + max_x) as i32 - 640).abs() <= 4,
        "{min_x}..{max_x}"
    );
    assert!(min_y > 100 && max_y < 200, "{min_y}..{max_y}");
}

#[test]
fn slate_title_shrinks_to_fit_narrow_frames() {
    let mut p = painter();
    let mut f = black(160, 120);
    p.draw_slate(&mut f, "SIGNAL LOST", "reconnecting… attempt 3");
    let lit: Vec<u32> = (0..120)
        .flat_map(|y| (0..160).map(move |x| (x, y)))
        .filter(|&(x, y)| f.pixel(x, y) == [255, 255, 255])
        .map(|(x, _)| x)
        .collect();
    assert!(!lit.is_empty());
    assert!(
        lit.iter().all(|&x| (4..156).contains(&x)),
        "title overflows"
    );
}

#[test]
fn painter_can_move_to_a_drawing_thread() {
    fn assert_send<T: Send + 'static>() {}
    assert_send::<Painter>();
    let mut p = painter();
    let handle = std::thread::spawn(move || {
        let mut f = black(32, 32);
        p.draw_text(&mut f, 0, 0, "ok", 12, Color::WHITE, None);
        f.data.iter().any(|&v| v != 0)
    });
    assert!(handle.join().unwrap());
}
