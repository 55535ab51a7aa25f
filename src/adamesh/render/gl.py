"""OpenGL backend: moderngl on a headless EGL context (Mesa llvmpipe works without a GPU)."""

from __future__ import annotations

import numpy as np

from adamesh.render.camera import AMBIENT, BACKGROUND_BOTTOM, BACKGROUND_TOP, LIGHTS, Camera

_VERT = """
#version 330
uniform mat4 view;
uniform mat4 proj;
in vec3 in_pos;
in vec3 in_normal;
in vec3 in_color;
out vec3 v_normal;
out vec3 v_color;
void main() {
    v_normal = mat3(view) * in_normal;
    v_color = in_color;
    gl_Position = proj * view * vec4(in_pos, 1.0);
}
"""

_FRAG = """
#version 330
uniform vec3 light_dir[2];
uniform float light_int[2];
uniform float ambient;
in vec3 v_normal;
in vec3 v_color;
out vec4 f_color;
void main() {
    vec3 n = normalize(v_normal);
    if (!gl_FrontFacing) n = -n;  // inner surfaces (mouth) are lit from their visible side
    float light = ambient;
    float spec = 0.0;
    for (int i = 0; i < 2; i++) {
        vec3 d = normalize(light_dir[i]);
        light += light_int[i] * max(dot(n, d), 0.0);
        vec3 h = normalize(d + vec3(0.0, 0.0, 1.0));
        spec += 0.12 * light_int[i] * pow(max(dot(n, h), 0.0), 24.0);
    }
    f_color = vec4(clamp(v_color * light + spec, 0.0, 1.0), 1.0);
}
"""

_BG_VERT = """
#version 330
in vec2 in_xy;
out float v_t;
void main() { v_t = (1.0 - in_xy.y) * 0.5; gl_Position = vec4(in_xy, 0.999, 1.0); }
"""
_BG_FRAG = """
#version 330
uniform vec3 top;
uniform vec3 bottom;
in float v_t;
out vec4 f_color;
void main() { f_color = vec4(mix(top, bottom, v_t), 1.0); }
"""


class GLRenderer:
    """Renders one fixed-topology mesh many times. Raises RuntimeError if no context can be made."""

    name = "moderngl-egl"

    def __init__(self, faces: np.ndarray, colors: np.ndarray, camera: Camera, samples: int = 0):
        import moderngl

        self.ctx = moderngl.create_standalone_context(backend="egl")
        ctx = self.ctx
        self.camera = camera
        w, h = camera.width, camera.height
        self.prog = ctx.program(vertex_shader=_VERT, fragment_shader=_FRAG)
        self.prog["view"].write(np.ascontiguousarray(camera.view.T, np.float32))
        self.prog["proj"].write(np.ascontiguousarray(camera.proj.T, np.float32))
        dirs = np.stack([d / np.linalg.norm(d) for d, _ in LIGHTS]).astype(np.float32)
        self.prog["light_dir"].write(dirs)
        self.prog["light_int"].write(np.array([i for _, i in LIGHTS], np.float32))
        self.prog["ambient"].value = AMBIENT
        n = len(colors)
        self.pos = ctx.buffer(reserve=n * 12, dynamic=True)
        self.nrm = ctx.buffer(reserve=n * 12, dynamic=True)
        col = ctx.buffer(np.ascontiguousarray(colors, np.float32).tobytes())
        ibo = ctx.buffer(np.ascontiguousarray(faces, np.int32).tobytes())
        self.vao = ctx.vertex_array(
            self.prog,
            [(self.pos, "3f", "in_pos"), (self.nrm, "3f", "in_normal"), (col, "3f", "in_color")],
            index_buffer=ibo,
            index_element_size=4,
        )
        bg = ctx.program(vertex_shader=_BG_VERT, fragment_shader=_BG_FRAG)
        bg["top"].value = tuple(BACKGROUND_TOP)
        bg["bottom"].value = tuple(BACKGROUND_BOTTOM)
        quad = ctx.buffer(np.array([-1, -1, 1, -1, -1, 1, 1, 1], np.float32).tobytes())
        self.bg = ctx.vertex_array(bg, [(quad, "2f", "in_xy")])
        self.fbo = ctx.simple_framebuffer((w, h))
        self.msaa = self.fbo
        if samples:
            self.msaa = ctx.framebuffer(
                color_attachments=[ctx.renderbuffer((w, h), samples=samples)],
                depth_attachment=ctx.depth_renderbuffer((w, h), samples=samples),
            )

    def render(self, verts: np.ndarray, normals: np.ndarray) -> np.ndarray:
        """(V, 3) vertices and normals -> (H, W, 3) uint8 image."""
        with self.ctx:  # several renderers (one per rig) may live in one process
            return self._render(verts, normals)

    def _render(self, verts: np.ndarray, normals: np.ndarray) -> np.ndarray:
        import moderngl

        ctx = self.ctx
        self.pos.write(np.ascontiguousarray(verts, np.float32).tobytes())
        self.nrm.write(np.ascontiguousarray(normals, np.float32).tobytes())
        self.msaa.use()
        ctx.clear(0, 0, 0, 1, depth=1.0)
        ctx.disable(moderngl.DEPTH_TEST)
        self.bg.render(moderngl.TRIANGLE_STRIP)
        ctx.enable(moderngl.DEPTH_TEST)
        self.vao.render(moderngl.TRIANGLES)
        if self.msaa is not self.fbo:
            ctx.copy_framebuffer(self.fbo, self.msaa)
        data = self.fbo.read(components=3, alignment=1)
        img = np.frombuffer(data, np.uint8).reshape(self.camera.height, self.camera.width, 3)
        return img[::-1].copy()

    def close(self):
        self.ctx.release()
