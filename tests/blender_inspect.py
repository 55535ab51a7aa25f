"""Run by Blender's Python: import an FBX and print, as JSON, what it holds (tests/test_fbx.py)."""

import json
import sys

import bpy


def curves(owner):
    data = getattr(owner, "animation_data", None)
    action = data.action if data else None
    if action is None:
        return []
    out = []
    for layer in action.layers:  # Blender 4.4+ keeps curves in the channel bags of layered actions
        for strip in layer.strips:
            for bag in strip.channelbags:
                out += list(bag.fcurves)
    return out


bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.context.scene.render.fps = int(sys.argv[2]) if len(sys.argv) > 2 else 24  # the rate to key the curves at
bpy.ops.import_scene.fbx(filepath=sys.argv[1], anim_offset=0.0)  # frame 0 at time 0, as written
report = {"objects": {}}
for obj in bpy.data.objects:
    entry = {
        "type": obj.type,
        "rotation_curves": sum(c.data_path.startswith("rotation") for c in curves(obj)),
    }
    keys = obj.data.shape_keys if obj.type == "MESH" else None
    if keys is not None:
        animated = {}
        for c in curves(keys):
            name = c.data_path.split('"')[1] if '"' in c.data_path else c.data_path
            animated[name] = [c.evaluate(f) for f in range(0, 50, 5)]
        entry["shape_keys"] = [k.name for k in keys.key_blocks[1:]]
        entry["animated"] = animated
    report["objects"][obj.name] = entry
print("REPORT " + json.dumps(report))
