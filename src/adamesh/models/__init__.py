"""The networks of the method: the expression model, MoLoRA, (later) the pose VQ-VAE and PoseGPT."""
