"""jetlab.physics"""
