"""TEST STAND-INS for what cannot run here (a GPU's nvidia-smi, the Ollama binary). Test code only."""
