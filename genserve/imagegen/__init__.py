"""Image generation: a Stable Diffusion pipeline (CLIP text encoder, UNet, VAE, scheduler)."""
