"""jetlab.model"""
