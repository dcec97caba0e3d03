"""pix2pixhd: pix2pixHD's global generator as the SPADE paper's strong baseline pix2pixHD++ (Table 3)."""
