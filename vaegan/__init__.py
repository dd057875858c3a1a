"""vaegan: KL autoencoders with perceptual and adversarial losses, and their KL dynamics."""
