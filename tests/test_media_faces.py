"""Image maths (CLIP / ImageNet) and the face-crop path: box maths, fallbacks, pre-extracted crops."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from transformers import CLIPImageProcessorPil

from nanoemox.media import MediaConfig, load_media, synth, transforms
from nanoemox.media.errors import CorruptMedia, MediaNotFound, ZeroDuration
from nanoemox.media.faces import crop_faces, expand_box, fill_missing, load_face_crops


@pytest.mark.parametrize("size", [(161, 97), (97, 161), (224, 224), (640, 360), (100, 100)])
def test_clip_preprocessing_matches_transformers(size):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    ours = transforms.normalize(transforms.resize_shortest_center_crop(image, 224)[None], transforms.CLIP_MEAN, transforms.CLIP_STD)
    ref = CLIPImageProcessorPil()(images=Image.fromarray(image), return_tensors="np")["pixel_values"]
    assert ours.shape == ref.shape == (1, 3, 224, 224)
    assert np.allclose(ours, ref, atol=1e-5)


def test_imagenet_normalisation():
    image = np.full((1, 4, 4, 3), 255, np.uint8)
    out = transforms.normalize(image, transforms.IMAGENET_MEAN, transforms.IMAGENET_STD)
    expected = (1.0 - np.array(transforms.IMAGENET_MEAN)) / np.array(transforms.IMAGENET_STD)
    assert np.allclose(out[0, :, 0, 0], expected, atol=1e-6)


def test_expand_box_adds_quarter_margin_and_clips():
    assert expand_box((40, 40, 20, 20), 100, 100) == (35, 35, 65, 65)
    assert expand_box((0, 90, 20, 20), 100, 100) == (0, 85, 25, 100)


def test_fill_missing_uses_nearest_then_earlier():
    a, b = (1, 1, 1, 1), (2, 2, 2, 2)
    assert fill_missing([None, a, None, None, b, None]) == [a, a, a, b, b, b]
    assert fill_missing([None, None]) == [None, None]


def test_crop_faces_without_faces_falls_back_to_full_frame():
    frames = [synth.frame_pattern(96, 64, 80) for _ in range(8)]
    crops, found = crop_faces(frames)
    assert crops == [None] * 8 and found == [False] * 8


def test_crop_faces_nearest_frame_fallback(monkeypatch):
    from nanoemox.media import faces as faces_module

    frames = [np.full((100, 100, 3), i, np.uint8) for i in range(4)]
    boxes = {2: (40, 40, 20, 20)}  # only frame 2 "has" a face
    monkeypatch.setattr(faces_module, "detect_largest_face", lambda f: boxes.get(int(f[0, 0, 0])))
    crops, found = crop_faces(frames)
    assert found == [False, False, True, False]
    assert all(c.shape == (30, 30, 3) for c in crops)
    assert [int(c[0, 0, 0]) for c in crops] == [0, 1, 2, 3]  # each frame cropped at the borrowed box


def test_crops_mode_flags_and_fallback_pixels(tmp_path):
    path = synth.write_video(tmp_path / "noface.mp4", seconds=1.0, size=(96, 64))
    frames = load_media(path, config=MediaConfig(face_input="frames"))
    crops = load_media(path, config=MediaConfig(face_input="crops"))
    assert frames.faces_found.all() and not crops.faces_found.any()
    # With no face anywhere the full frame stands in: same pixels as frames mode.
    assert np.allclose(frames.face_pixel_values, crops.face_pixel_values)


def test_face_crops_from_folder_and_npy(tmp_path):
    folder = tmp_path / "aligned"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.full((112, 112, 3), 10 * i, np.uint8)).save(folder / f"frame_det_00_{i + 1:06d}.bmp")
    crops = load_face_crops(folder, 8)
    assert len(crops) == 8 and [int(c[0, 0, 0]) for c in crops] == [0, 0, 10, 10, 10, 10, 20, 20]
    stack = np.stack([np.full((50, 40), i, np.uint8) for i in range(16)])
    np.save(tmp_path / "faces.npy", stack)
    crops = load_face_crops(tmp_path / "faces.npy", 8)
    assert crops[0].shape == (50, 40, 3) and [int(c[0, 0, 0]) for c in crops] == [0, 2, 4, 6, 9, 11, 13, 15]


def test_face_crop_errors(tmp_path):
    with pytest.raises(MediaNotFound):
        load_face_crops(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ZeroDuration):
        load_face_crops(tmp_path / "empty")
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    with pytest.raises(CorruptMedia):
        load_face_crops(tmp_path / "bad.npy")


def test_pre_extracted_crops_override_frames(tmp_path):
    video = synth.write_video(tmp_path / "clip.mp4", seconds=1.0)
    np.save(tmp_path / "faces.npy", np.full((4, 64, 64, 3), 255, np.uint8))
    media = load_media(video, faces=tmp_path / "faces.npy")
    assert media.faces_found.all() and media.video_present
    white = (1.0 - np.array(transforms.IMAGENET_MEAN)) / np.array(transforms.IMAGENET_STD)
    assert np.allclose(media.face_pixel_values[:, :, 10, 10], white, atol=1e-5)


def test_detector_finds_drawn_face_and_crops_with_margin():
    face_frame = synth.face_image(320, 240, center=(200, 120), size=120)
    blank = np.full((240, 320, 3), 90, np.uint8)
    crops, found = crop_faces([blank, face_frame, blank, blank])
    assert found == [False, True, False, False]
    from nanoemox.media.faces import detect_largest_face

    x, y, w, h = detect_largest_face(face_frame)
    assert abs(x + w / 2 - 200) < 15 and abs(y + h / 2 - 120) < 20  # box on the drawn face
    x0, y0, x1, y1 = expand_box((x, y, w, h), 320, 240)
    assert crops[1].shape == (y1 - y0, x1 - x0, 3)
    assert crops[1].shape[0] > h  # margin added (clipped at the image border if needed)
    # Frames without a face borrow the nearest found box.
    assert all(c.shape == crops[1].shape for c in crops)
