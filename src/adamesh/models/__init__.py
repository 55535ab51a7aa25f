"""The networks of the method: the expression model, MoLoRA, the pose VQ-VAE and PoseGPT, and loading them."""
