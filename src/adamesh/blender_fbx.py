"""glb to FBX through Blender, for Unreal, Unity and Maya: run by a Python that has Blender's `bpy`.

    python blender_fbx.py IN.glb OUT.fbx FPS

Blender's glTF importer reads the glb (mesh, shape keys, the head node and the animation) at the
scene's frame rate, FPS, and its FBX exporter writes it with the animation baked at every frame:
shape-key values and the head's rotation. This file imports nothing from adamesh: `adamesh.export`
runs it in its own process, so that bpy (a large optional dependency, Python 3.11 only) can live in
an environment of its own (`make fbx`).
"""

import sys

import bpy


def convert(src: str, dst: str, fps: float) -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = max(1, round(fps)), 1.0  # the importer keys at this rate
    bpy.ops.import_scene.gltf(filepath=src)
    ends = [a.frame_range[1] for a in bpy.data.actions]
    scene.frame_start, scene.frame_end = 0, max(0, round(max(ends))) if ends else 0
    bpy.ops.export_scene.fbx(
        filepath=dst,
        bake_anim=True,
        bake_anim_use_all_actions=False,
        bake_anim_use_nla_strips=False,
        bake_anim_simplify_factor=0.0,  # every frame as it is
        add_leaf_bones=False,
    )


if __name__ == "__main__":
    convert(sys.argv[1], sys.argv[2], float(sys.argv[3]))
